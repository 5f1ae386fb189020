/* File helpers: capped reads, atomic writes, directory creation. */
#ifndef CM_FILE_H
#define CM_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cm_buf.h"
#include "cm_error.h"

/* Read a whole file into out (caller frees out->data), refusing files
 * larger than limit bytes. */
int cm_file_read(cm_buf *out, const char *path, size_t limit, cm_error *err);

/* Write data to path atomically: temp file in the same folder, fsync,
 * rename, fsync of the folder. Readers see the old file or the new one. */
int cm_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 cm_error *err);

/* Create a temp file next to path ("<path>.tmp.XXXXXX"); *out_fd is open
 * for writing and out_tmp (size n) receives its name. */
int cm_file_mktemp(int *out_fd, char *out_tmp, size_t n, const char *path, cm_error *err);

/* fsync fd, rename tmp to path, fsync the parent folder. Closes fd. */
int cm_file_commit(int fd, const char *tmp, const char *path, cm_error *err);

/* mkdir -p with mode 0755. */
int cm_mkdirs(const char *path, cm_error *err);

/* fsync the folder holding path. */
int cm_fsync_parent(const char *path, cm_error *err);

/* Write all n bytes to fd, retrying on EINTR and short writes. */
int cm_write_all(int fd, const void *p, size_t n, cm_error *err);

/* Read fd from where it stands, a block at a time, handing each block to
 * fn: n bytes exactly (fewer is an error: "<what> ended N bytes early"),
 * or everything to the end when n is CM_READ_TO_END. *out_n (may be NULL)
 * gets the bytes read. The one read loop of hashing and copying a file. */
#define CM_READ_TO_END UINT64_MAX
int cm_read_each(int fd, uint64_t n, int (*fn)(void *ctx, const void *p, size_t n, cm_error *err),
		 void *ctx, uint64_t *out_n, const char *what, cm_error *err);

/* The names in folder dir but "." and "..", sorted (strcmp): *out holds
 * *n strings; free them with cm_names_free. */
int cm_dir_names(char ***out, size_t *n, const char *dir, cm_error *err);
/* Frees v's n strings and v. */
void cm_names_free(char **v, size_t n);

/* Remove a folder tree (used for temp dirs we made ourselves). */
int cm_rmtree(const char *path);

#endif
