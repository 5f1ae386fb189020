#include "cm_dio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cm_dwriter {
	int fd;
	size_t align;  /* 0: plain writes */
	uint64_t off;  /* file offset of buf[0] */
	uint64_t skip; /* incoming bytes still to drop */
	char *buf;
	size_t cap, used;
};

static size_t mem_align_up(size_t n)
{
	return (n + CM_DIO_MEM_ALIGN - 1) & ~(size_t)(CM_DIO_MEM_ALIGN - 1);
}

static int set_direct(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	int want = on ? (fl | O_DIRECT) : (fl & ~O_DIRECT);
	return want == fl ? 0 : fcntl(fd, F_SETFL, want);
}

size_t cm_dio_align(int fd)
{
	size_t a = CM_DIO_MEM_ALIGN;
#ifdef STATX_DIOALIGN
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN)) {
		if (!sx.stx_dio_offset_align || sx.stx_dio_mem_align > CM_DIO_MEM_ALIGN)
			return 0; /* no direct I/O on this file */
		a = sx.stx_dio_offset_align;
	}
#else
	(void)fd; /* musl before 1.2.5 has no statx() */
#endif
	return a;
}

size_t cm_dio_start(int fd, uint64_t off)
{
	size_t a = cm_dio_align(fd);
	if (!a || off % a || set_direct(fd, 1) < 0)
		return 0;
	return a;
}

int cm_pwrite_all(int fd, const void *p, size_t n, uint64_t off, cm_error *err)
{
	const char *s = p;
	while (n) {
		ssize_t k = pwrite(fd, s, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return cm_error_sys(err, errno, "writing");
		if (k == 0)
			return cm_error_set(err, CM_EIO, "writing: no progress");
		s += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static int go_plain(int fd, size_t *io_align, cm_error *err)
{
	*io_align = 0;
	if (set_direct(fd, 0) < 0)
		return cm_error_sys(err, errno, "turning off direct I/O");
	return 0;
}

int cm_dio_pwrite(int fd, size_t *io_align, const void *p, size_t n, uint64_t off, cm_error *err)
{
	const char *s = p;
	size_t a = *io_align;
	size_t head = 0;
	if (a && off % a == 0 && (uintptr_t)p % CM_DIO_MEM_ALIGN == 0)
		head = n - n % a;
	while (head) {
		ssize_t k = pwrite(fd, s, head, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EINVAL) {
			head = 0; /* refused: the rest goes through the page cache */
			break;
		}
		if (k < 0)
			return cm_error_sys(err, errno, "writing");
		if (k == 0)
			return cm_error_set(err, CM_EIO, "writing: no progress");
		s += k;
		head -= (size_t)k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	if (!n)
		return 0;
	if (*io_align) {
		int rc = go_plain(fd, io_align, err);
		if (rc < 0)
			return rc;
	}
	return cm_pwrite_all(fd, s, n, off, err);
}

int cm_dwriter_new(cm_dwriter **out, int fd, uint64_t off, size_t bufsz, cm_error *err)
{
	cm_dwriter *w = calloc(1, sizeof(*w));
	if (!w)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	w->fd = fd;
	w->off = off;
	w->cap = mem_align_up(bufsz ? bufsz : CM_DIO_MEM_ALIGN);
	w->align = cm_dio_start(fd, off);
	*out = w;
	return 0;
}

int cm_dwriter_flush(cm_dwriter *w, cm_error *err)
{
	if (!w->used)
		return 0;
	int rc = cm_dio_pwrite(w->fd, &w->align, w->buf, w->used, w->off, err);
	if (rc < 0)
		return rc;
	w->off += w->used;
	w->used = 0;
	return 0;
}

int cm_dwriter_write(cm_dwriter *w, const void *p, size_t n, cm_error *err)
{
	const char *s = p;
	if (w->skip) {
		size_t k = w->skip < n ? (size_t)w->skip : n;
		w->skip -= k;
		s += k;
		n -= k;
	}
	if (n && !w->buf && !(w->buf = cm_dio_alloc(w->cap)))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	while (n) {
		size_t k = w->cap - w->used;
		if (k > n)
			k = n;
		memcpy(w->buf + w->used, s, k);
		w->used += k;
		s += k;
		n -= k;
		int rc = w->used == w->cap ? cm_dwriter_flush(w, err) : 0;
		if (rc < 0)
			return rc;
	}
	return 0;
}

int cm_dwriter_skip(cm_dwriter *w, uint64_t n, cm_error *err)
{
	int rc = cm_dwriter_flush(w, err);
	if (rc < 0)
		return rc;
	w->off += n;
	w->skip += n;
	return 0;
}

uint64_t cm_dwriter_offset(const cm_dwriter *w)
{
	return w->off + w->used;
}

size_t cm_dwriter_align(const cm_dwriter *w)
{
	return w->align;
}

void cm_dwriter_free(cm_dwriter *w)
{
	if (!w)
		return;
	if (w->align)
		set_direct(w->fd, 0);
	free(w->buf);
	free(w);
}

int cm_dio_open_read(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	return fd >= 0 ? fd : open(path, O_RDONLY | O_CLOEXEC);
}

void *cm_dio_alloc(size_t n)
{
	void *b = NULL;
	return posix_memalign(&b, CM_DIO_MEM_ALIGN, mem_align_up(n)) == 0 ? b : NULL;
}

ssize_t cm_dio_read(int fd, void *buf, size_t n)
{
	for (;;) {
		ssize_t k = read(fd, buf, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EINVAL && (fcntl(fd, F_GETFL) & O_DIRECT)) {
			if (set_direct(fd, 0) < 0)
				return -1;
			continue;
		}
		return k;
	}
}
