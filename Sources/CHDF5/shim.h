// HDF5's C API (and its high-level library's dimension scales, H5DS) plus the macros Swift
// cannot import.
//
// HDF5 exposes its predefined types and property lists as macros over mutable globals
// (`H5T_NATIVE_FLOAT` is `(H5open(), H5T_NATIVE_FLOAT_g)`); Swift cannot import them, and
// reading the `*_g` globals directly is an error under Swift 6 concurrency checking.
// Each is wrapped here in a `static inline` function.
#ifndef OVEROPT_CHDF5_SHIM_H
#define OVEROPT_CHDF5_SHIM_H
#include <hdf5.h>
#include <hdf5_hl.h>

static inline hid_t overopt_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t overopt_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t overopt_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t overopt_H5T_NATIVE_INT32(void) { return H5T_NATIVE_INT32; }
static inline hid_t overopt_H5T_NATIVE_INT8(void) { return H5T_NATIVE_INT8; }
static inline hid_t overopt_H5T_C_S1(void) { return H5T_C_S1; }
// Little-endian file types, so files are identical on every machine.
static inline hid_t overopt_H5T_IEEE_F32LE(void) { return H5T_IEEE_F32LE; }
static inline hid_t overopt_H5T_IEEE_F64LE(void) { return H5T_IEEE_F64LE; }
static inline hid_t overopt_H5T_STD_I64LE(void) { return H5T_STD_I64LE; }
static inline hid_t overopt_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t overopt_H5P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t overopt_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline hid_t overopt_H5S_ALL(void) { return H5S_ALL; }
static inline hid_t overopt_H5E_DEFAULT(void) { return H5E_DEFAULT; }
static inline unsigned overopt_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned overopt_H5F_ACC_EXCL(void) { return H5F_ACC_EXCL; }
static inline unsigned overopt_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned overopt_H5F_ACC_RDWR(void) { return H5F_ACC_RDWR; }
static inline size_t overopt_H5T_VARIABLE(void) { return H5T_VARIABLE; }
static inline hsize_t overopt_H5S_UNLIMITED(void) { return H5S_UNLIMITED; }

/// Silences HDF5's automatic error printing; errors are read with H5Ewalk2 instead.
/* Before any other HDF5 call: no atexit handler (it would close, and so flush, a file
   abandoned after a failed write, which crashes HDF5 1.10; OverOpt closes its files
   itself), and no automatic error printing (errors are thrown as values). */
static inline void overopt_H5_initialize(void) {
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

#endif
