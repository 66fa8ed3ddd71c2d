// Which of OpenBLAS's kernels the exact prompt chunks' sgemm runs.
//
// A DYNAMIC_ARCH OpenBLAS (Debian's) picks its kernels from the CPU's family and model when it loads.
// Two things go wrong with that for this engine:
//  - a CPU the library does not know falls back to a generic core: Debian's 0.3.21 on a Sapphire Rapids
//    VM ("Intel(R) Xeon(R) Processor") chose Prescott (SSE3), 40 GFLOPS at one thread, where the
//    Haswell kernels give 97 and the SkylakeX ones 171 (README, Decisions);
//  - the kernels decide the bits (Haswell's and Zen's sgemm agree; SkylakeX's and Prescott's differ), so
//    two workers whose CPUs the library names differently would store different results for one example.
// So the kernels follow the instruction set the engine's own kernels use (ck_cpu_level):
// SkylakeX's on every CPU with AVX-512, Haswell's on every other one with AVX2 and FMA, whatever the
// library detected. That is the same split as the attention kernel's (attention.c), so two machines of
// one class compute the same bits throughout. OPENBLAS_CORETYPE, when set, wins (and then results may
// differ between machines). The library's own dynamic-arch entry points re-run its choice with the
// variable set; they are looked up at run time, so an OpenBLAS built for one fixed CPU (without them)
// is left as it is.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include "ckernels.h"

static const char *blas_core(void) {
    char *(*corename)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_corename");
    const char *name = corename ? corename() : NULL;
    return name ? name : "unknown";
}

const char *ck_blas_pin_kernels(void) {
#if defined(__x86_64__)
    const int level = ck_cpu_level();
    const char *want = level == 2 ? "SkylakeX" : level == 1 ? "Haswell" : NULL;
    if (want && !getenv("OPENBLAS_CORETYPE") && strcmp(blas_core(), want) != 0) {
        void (*quit)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
        void (*init)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
        if (quit && init) {
            // The library reads its choice from the variable; it is removed again so that the process
            // environment still says only what the user set.
            setenv("OPENBLAS_CORETYPE", want, 0);
            quit();
            init();
            unsetenv("OPENBLAS_CORETYPE");
        }
    }
#endif
    return blas_core();
}
