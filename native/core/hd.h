// SLN_HD marks small inline functions that both the CPU code (g++) and the CUDA
// kernels (nvcc) call, so that one definition of a formula serves both backends
// (dropout mask, augmentation pixel math). Plain `inline` outside nvcc.
#pragma once
#if defined(__CUDACC__)
#define SLN_HD __host__ __device__
#else
#define SLN_HD
#endif
