// npm run bench -- models: the name the model-zoo issue uses for bench/zoo.ts.
export { main } from "./zoo";
