{
  "targets": [
    {
      "target_name": "selflabel_native",
      "sources": [
        "<!@(node -p \"require('./native/sources.json').addon.join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/include",
        "native"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fvisibility=hidden", "-Wall", "-Wno-unused-parameter", "-Wno-psabi"],
      "ldflags": ["-fopenmp", "-Wl,--disable-new-dtags", "-Wl,-rpath,'$$ORIGIN'"],
      "libraries": ["-ldnnl", "-ldl"]
    }
  ]
}
