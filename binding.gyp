{
  "variables": {
    # 1 adds the test-only addon (scripts/build-test-addon.js configures with -Dsln_test_addon=1)
    "sln_test_addon%": 0,
    # 1 where libjpeg's headers and library are found (scripts/has-libjpeg.js): the addon's JPEG decoder
    "sln_jpeg%": "<!(node scripts/has-libjpeg.js)"
  },
  "target_defaults": {
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "native/include",
      "native"
    ],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
    "cflags!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fvisibility=hidden", "-Wall", "-Wno-unused-parameter", "-Wno-psabi"],
    "ldflags": ["-fopenmp"]
  },
  "targets": [
    {
      "target_name": "selflabel_native",
      "sources": [
        "<!@(node -p \"require('./native/sources.json').addon.join(' ')\")"
      ],
      "ldflags": ["-Wl,--disable-new-dtags", "-Wl,-rpath,'$$ORIGIN'"],
      "libraries": ["-ldnnl", "-ldl"],
      "conditions": [
        ["sln_jpeg==1", {"defines": ["SLN_HAVE_LIBJPEG"], "libraries": ["-ljpeg"]}]
      ]
    }
  ],
  "conditions": [
    ["sln_test_addon==1", {
      "targets": [
        {
          # the float64 reference and the op harness, for the tests only (native/harness/addon.cpp),
          # in build/Release/test/ (scripts/build-test-addon.js removes gyp's copy beside the addon)
          "target_name": "selflabel_native_test",
          "product_dir": "<(PRODUCT_DIR)/test",
          "sources": [
            "<!@(node -p \"require('./native/sources.json').test_addon.join(' ')\")"
          ]
        }
      ]
    }]
  ]
}
