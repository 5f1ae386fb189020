#include "bld_progress.h"

#include <jansson.h>
#include <stdarg.h>
#include <string.h>

void bld_human_bytes(char *out, size_t n, double b)
{
	static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;
	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(out, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void short_digest(char *out, size_t n, const char *d)
{
	if (d && strncmp(d, "sha256:", 7) == 0)
		snprintf(out, n, "%.19s", d);
	else
		snprintf(out, n, "%.60s", d ? d : "");
}

static void clear_block(bld_progress *p)
{
	if (p->mode == BLD_PROGRESS_TTY && p->drawn > 0) {
		fprintf(p->out, "\033[%dA\r\033[J", p->drawn);
		p->drawn = 0;
	}
}

void bld_progress_json(bld_progress *p, json_t *o)
{
	if (!o)
		return;
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s) {
		fprintf(p->out, "%s\n", s);
		fflush(p->out);
		free(s);
	}
}

void bld_progress_msg(bld_progress *p, const char *fmt, ...)
{
	if (!p || p->mode == BLD_PROGRESS_NONE || p->mode == BLD_PROGRESS_JSON)
		return;
	clear_block(p);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(p->out, fmt, ap);
	va_end(ap);
	fputc('\n', p->out);
	fflush(p->out);
}

void bld_progress_resolve(bld_progress *p, const char *ref, const char *digest, size_t blobs)
{
	if (p && p->mode == BLD_PROGRESS_JSON)
		bld_progress_json(p, json_pack("{s:s,s:s,s:s,s:I}", "event", "resolve", "ref", ref,
					       "digest", digest, "blobs", (json_int_t)blobs));
	else
		bld_progress_msg(p, "resolve %s -> %s (%zu blobs)", ref, digest, blobs);
}

void bld_progress_lock(bld_progress *p, const char *path)
{
	if (p && p->mode == BLD_PROGRESS_JSON)
		bld_progress_json(p, json_pack("{s:s,s:s}", "event", "lock", "path", path));
	else
		bld_progress_msg(p, "lock  wrote %s", path);
}

void bld_progress_end(bld_progress *p)
{
	if (p)
		clear_block(p);
}

static void draw(bld_progress *p, const reg_event *ev)
{
	clear_block(p);
	int lines = 0;
	for (size_t i = 0; i < ev->n_active && i < 12; i++) {
		const reg_active *a = &ev->active[i];
		char d[32], h1[32], h2[32], bar[21];
		short_digest(d, sizeof(d), a->digest);
		bld_human_bytes(h1, sizeof(h1), (double)a->done);
		bld_human_bytes(h2, sizeof(h2), (double)a->total);
		int fill = a->total ? (int)(20.0 * (double)a->done / (double)a->total) : 0;
		for (int k = 0; k < 20; k++)
			bar[k] = k < fill ? '=' : ' ';
		bar[20] = '\0';
		fprintf(p->out, "  %s [%s] %s / %s\n", d, bar, h1, h2);
		lines++;
	}
	char h1[32], h2[32], rate[32], eta[32] = "--:--";
	double r = ev->elapsed > 0 ? (double)ev->all_done / ev->elapsed : 0;
	bld_human_bytes(h1, sizeof(h1), (double)ev->all_done);
	bld_human_bytes(h2, sizeof(h2), (double)ev->all_total);
	bld_human_bytes(rate, sizeof(rate), r);
	if (r > 0 && ev->all_total >= ev->all_done) {
		double s = (double)(ev->all_total - ev->all_done) / r;
		snprintf(eta, sizeof(eta), "%d:%02d", (int)s / 60, (int)s % 60);
	}
	fprintf(p->out, "  total %s / %s  %s/s  ETA %s  (%zu active)\n", h1, h2, rate, eta,
		ev->n_active);
	lines++;
	fflush(p->out);
	p->drawn = lines;
}

void bld_progress_event(void *ud, const reg_event *ev)
{
	bld_progress *p = ud;
	if (!p || p->mode == BLD_PROGRESS_NONE)
		return;
	char d[32], h1[32], h2[32];
	short_digest(d, sizeof(d), ev->what);
	if (p->mode == BLD_PROGRESS_JSON) {
		json_t *o = NULL;
		switch (ev->type) {
		case REG_EV_BLOB_START:
			o = json_pack("{s:s,s:s,s:s,s:I,s:I}", "event", "blob_start", "digest",
				      ev->what, "repository", ev->repo ? ev->repo : "", "size",
				      (json_int_t)ev->total, "offset", (json_int_t)ev->done);
			break;
		case REG_EV_BLOB_DONE:
			o = json_pack("{s:s,s:s,s:I,s:I}", "event", "blob_done", "digest", ev->what,
				      "size", (json_int_t)ev->total, "transferred",
				      (json_int_t)ev->done);
			break;
		case REG_EV_RESUME:
			o = json_pack("{s:s,s:s,s:I}", "event", "resume", "digest", ev->what,
				      "offset", (json_int_t)ev->done);
			break;
		case REG_EV_RETRY:
			o = json_pack("{s:s,s:s,s:i,s:f,s:s}", "event", "retry", "what", ev->what,
				      "status", ev->status, "wait", ev->wait, "reason",
				      ev->msg ? ev->msg : "");
			break;
		case REG_EV_AUTH:
			o = json_pack("{s:s,s:s,s:s}", "event", "auth", "host", ev->what,
				      "credentials", ev->msg ? ev->msg : "");
			break;
		case REG_EV_TICK:
			o = json_pack("{s:s,s:I,s:I,s:i,s:f}", "event", "progress", "done",
				      (json_int_t)ev->all_done, "total", (json_int_t)ev->all_total,
				      "active", (int)ev->n_active, "elapsed", ev->elapsed);
			break;
		default:
			break;
		}
		bld_progress_json(p, o);
		return;
	}
	switch (ev->type) {
	case REG_EV_BLOB_START:
		if (p->mode == BLD_PROGRESS_PLAIN) {
			bld_human_bytes(h1, sizeof(h1), (double)ev->total);
			if (ev->done) {
				bld_human_bytes(h2, sizeof(h2), (double)ev->done);
				bld_progress_msg(p, "fetch %s (%s, resuming at %s)", d, h1, h2);
			} else {
				bld_progress_msg(p, "fetch %s (%s)", d, h1);
			}
		}
		break;
	case REG_EV_BLOB_DONE:
		if (p->mode == BLD_PROGRESS_PLAIN) {
			bld_human_bytes(h1, sizeof(h1), (double)ev->done);
			bld_progress_msg(p, "done  %s (%s transferred)", d, h1);
		}
		break;
	case REG_EV_RETRY:
		bld_progress_msg(p, "retry %s: %s; waiting %.1fs", ev->what, ev->msg ? ev->msg : "",
				 ev->wait);
		break;
	case REG_EV_AUTH:
		bld_progress_msg(p, "auth  %s: %s", ev->what, ev->msg ? ev->msg : "");
		break;
	case REG_EV_TICK:
		if (p->mode == BLD_PROGRESS_TTY)
			draw(p, ev);
		break;
	default:
		break;
	}
}
