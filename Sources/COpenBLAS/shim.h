// OpenBLAS's CBLAS interface (Debian: libopenblas-dev) plus its thread control.
#include <cblas.h>
