// `selflabel-native info`: whether --distributed can run here (MPI) and with
// --device cuda (NCCL), and why not. Loads nothing into the process but the MPI
// and NCCL libraries themselves (no MPI_Init, no communicator).
import { mpiStatus, MpiStatus } from "./mpi";
import { ncclStatus, NcclStatus } from "./nccl";

export interface DistributedStatus {
  mpi: MpiStatus;
  nccl: NcclStatus;
}

export function distributedStatus(): DistributedStatus {
  const mpi = mpiStatus();
  return { mpi, nccl: ncclStatus(mpi) };
}
