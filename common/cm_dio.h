/* Large sequential writes and reads that go around the page cache.
 *
 * Bundles and cache blobs are large, written once and read back at most
 * once per build. Through the page cache every byte is first copied into
 * fresh cache memory; on the VMs we measure on, filling fresh page-cache
 * memory costs about 2.2 s per GiB, while O_DIRECT plus fsync costs about
 * 0.4 s (docs/benchmarks.md). Where a filesystem refuses O_DIRECT (tmpfs on
 * old kernels, some network filesystems) everything falls back to plain
 * I/O.
 *
 * A file is never written directly and through the page cache at the same
 * time in the same place: the kernel cannot keep the two coherent then.
 * Callers write unaligned edges only when no direct write is in flight. */
#ifndef CM_DIO_H
#define CM_DIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cm_error.h"

/* Buffers for direct I/O are aligned to this, which covers every memory
 * alignment the kernel asks for. */
#define CM_DIO_MEM_ALIGN 4096u

/* The offset alignment O_DIRECT needs on fd's filesystem (statx), or 0
 * when fd cannot do direct I/O. Does not change fd. */
size_t cm_dio_align(int fd);

/* Turn O_DIRECT on for fd when off is aligned and the filesystem takes
 * it: returns the alignment, or 0 (fd left as it was). */
size_t cm_dio_start(int fd, uint64_t off);

/* pwrite all n bytes at off. While *io_align is non-zero (O_DIRECT on),
 * the aligned head goes out directly; an unaligned rest, or a refusal by
 * the filesystem, turns O_DIRECT off on fd and sets *io_align to 0. */
int cm_dio_pwrite(int fd, size_t *io_align, const void *p, size_t n, uint64_t off, cm_error *err);

/* pwrite all n bytes at off, as they are (no fallback). */
int cm_pwrite_all(int fd, const void *p, size_t n, uint64_t off, cm_error *err);

/* A sequential writer that appends to fd from offset off. It does not own
 * fd. Writes are gathered into bufsz bytes (rounded up to
 * CM_DIO_MEM_ALIGN; allocated on the first write). */
typedef struct cm_dwriter cm_dwriter;
int cm_dwriter_new(cm_dwriter **out, int fd, uint64_t off, size_t bufsz, cm_error *err);
int cm_dwriter_write(cm_dwriter *w, const void *p, size_t n, cm_error *err);
/* Leave the next n bytes of the file as they are: what is buffered is
 * written first (it must end aligned to stay direct), then the offset
 * moves on. Bytes given to cm_dwriter_write while a skip is running are
 * dropped until the skip is used up. */
int cm_dwriter_skip(cm_dwriter *w, uint64_t n, cm_error *err);
/* Write everything buffered. */
int cm_dwriter_flush(cm_dwriter *w, cm_error *err);
/* The file offset just past the last byte given to (or skipped by) w. */
uint64_t cm_dwriter_offset(const cm_dwriter *w);
/* The direct-I/O alignment w still writes with (0: plain writes). */
size_t cm_dwriter_align(const cm_dwriter *w);
/* Free without flushing. NULL is a no-op. Leaves O_DIRECT off on fd. */
void cm_dwriter_free(cm_dwriter *w);

/* Open path read-only, with O_DIRECT where the filesystem takes it. */
int cm_dio_open_read(const char *path);
/* An aligned buffer for direct I/O (free with free()); n is rounded up. */
void *cm_dio_alloc(size_t n);
/* read() that turns O_DIRECT off and retries when the kernel refuses the
 * direct read (EINVAL). buf must come from cm_dio_alloc and n be a
 * multiple of CM_DIO_MEM_ALIGN. */
ssize_t cm_dio_read(int fd, void *buf, size_t n);

#endif
