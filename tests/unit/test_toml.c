/* ins_toml: the one TOML reader (containerd config dump). Real dumps of
 * containerd 1.6 (version 2) and 2.x (version 3, single-quoted keys,
 * arrays of tables), every value type, and hostile input: each refused
 * with the line and what was wrong, nothing leaked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_file.h"
#include "ins_toml.h"
#include "tu.h"

static const char *get_s(const ins_toml *t, const char *const *path)
{
	const ins_toml_entry *e = ins_toml_get(t, path);
	return e && e->type == INS_TOML_STRING ? e->s : NULL;
}

static void test_dump_v2(void)
{
	const char *top = getenv("FERRY_TOP");
	char path[4096];
	snprintf(path, sizeof(path), "%s/tests/fixtures/containerd/config-dump-v2.toml",
		 top ? top : ".");
	cm_buf b = CM_BUF_INIT;
	cm_error e = {0};
	TU_CHECK_MSG(cm_file_read(&b, path, INS_TOML_TEXT_MAX, &e) == 0, "%s", e.msg);
	ins_toml t;
	int rc = ins_toml_parse(&t, b.data ? b.data : "", b.len, &e);
	TU_CHECK_MSG(rc == 0, "%s", e.msg);
	const char *snap[] = {"plugins", "io.containerd.grpc.v1.cri", "containerd", "snapshotter",
			      NULL};
	TU_CHECK_STR(get_s(&t, snap), "overlayfs");
	const char *ver[] = {"version", NULL};
	const ins_toml_entry *v = ins_toml_get(&t, ver);
	TU_CHECK(v && v->type == INS_TOML_INT && v->i == 2);
	const char *dis[] = {"disabled_plugins", NULL};
	v = ins_toml_get(&t, dis);
	TU_CHECK(v && v->type == INS_TOML_ARRAY && v->n_items == 0);
	const char *missing[] = {"plugins", "io.containerd.grpc.v1.cri", "nope", NULL};
	TU_CHECK(ins_toml_get(&t, missing) == NULL);
	ins_toml_free(&t);
	cm_buf_free(&b);
}

static void test_dump_v3(void)
{
	/* as containerd 2.x writes it */
	const char *text = "version = 3\n"
			   "root = '/var/lib/containerd'\n"
			   "disabled_plugins = []\n"
			   "[grpc]\n"
			   "  address = '/run/containerd/containerd.sock'\n"
			   "  max_recv_message_size = 16777216\n"
			   "[plugins]\n"
			   "  [plugins.'io.containerd.cri.v1.images']\n"
			   "    snapshotter = 'overlayfs'\n"
			   "    disable_snapshot_annotations = true\n"
			   "    discard_unpacked_layers = false\n"
			   "    [plugins.'io.containerd.cri.v1.images'.pinned_images]\n"
			   "      sandbox = 'registry.k8s.io/pause:3.10'\n"
			   "  [plugins.'io.containerd.transfer.v1.local']\n"
			   "    max_concurrent_downloads = 3\n"
			   "    [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]\n"
			   "      platform = 'linux/amd64'\n"
			   "      snapshotter = 'overlayfs'\n"
			   "    [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]\n"
			   "      platform = 'linux/arm64' # a comment\n"
			   "      snapshotter = 'native'\n"
			   "[cgroup]\n"
			   "  path = ''\n"
			   "[timeouts]\n"
			   "  'io.containerd.timeout.shim.cleanup' = '5s'\n";
	ins_toml t;
	cm_error e = {0};
	TU_CHECK_MSG(ins_toml_parse(&t, text, strlen(text), &e) == 0, "%s", e.msg);
	const char *snap[] = {"plugins", "io.containerd.cri.v1.images", "snapshotter", NULL};
	TU_CHECK_STR(get_s(&t, snap), "overlayfs");
	const char *u1[] = {"plugins",	     "io.containerd.transfer.v1.local",
			    "unpack_config", "[1]",
			    "snapshotter",   NULL};
	TU_CHECK_STR(get_s(&t, u1), "native");
	const char *dis[] = {"plugins", "io.containerd.cri.v1.images",
			     "disable_snapshot_annotations", NULL};
	const ins_toml_entry *v = ins_toml_get(&t, dis);
	TU_CHECK(v && v->type == INS_TOML_BOOL && v->i == 1);
	const char *to[] = {"timeouts", "io.containerd.timeout.shim.cleanup", NULL};
	TU_CHECK_STR(get_s(&t, to), "5s");
	const char *empty[] = {"cgroup", "path", NULL};
	TU_CHECK_STR(get_s(&t, empty), "");
	ins_toml_free(&t);
}

static void test_values(void)
{
	const char *text = "a.b.\"c.d\" = \"x\\ty\\u00e9\\\"\\\\\"\n"
			   "n = -1_000\n"
			   "f = 1.5\n"
			   "d = 1979-05-27T07:32:00Z\n"
			   "arr = [ 'one', \"two\", # comment\n"
			   "  'three', ]\n"
			   "mixed = [1, 'a']\n"
			   "nested = [['a'], ['b']]\n"
			   "inl = { x = 1, y.z = 'deep' }\n"
			   "tabs = [{ k = 1 }, { k = 2 }]\n";
	ins_toml t;
	cm_error e = {0};
	TU_CHECK_MSG(ins_toml_parse(&t, text, strlen(text), &e) == 0, "%s", e.msg);
	const char *s[] = {"a", "b", "c.d", NULL};
	TU_CHECK_STR(get_s(&t, s), "x\ty\xc3\xa9\"\\");
	const char *n[] = {"n", NULL};
	const ins_toml_entry *v = ins_toml_get(&t, n);
	TU_CHECK(v && v->type == INS_TOML_INT && v->i == -1000);
	const char *f[] = {"f", NULL}, *d[] = {"d", NULL}, *m[] = {"mixed", NULL},
		   *ne[] = {"nested", NULL}, *tb[] = {"tabs", NULL};
	TU_CHECK(ins_toml_get(&t, f) && ins_toml_get(&t, f)->type == INS_TOML_OTHER);
	TU_CHECK(ins_toml_get(&t, d) && ins_toml_get(&t, d)->type == INS_TOML_OTHER);
	TU_CHECK(ins_toml_get(&t, m) && ins_toml_get(&t, m)->type == INS_TOML_OTHER);
	TU_CHECK(ins_toml_get(&t, ne) && ins_toml_get(&t, ne)->type == INS_TOML_OTHER);
	TU_CHECK(ins_toml_get(&t, tb) && ins_toml_get(&t, tb)->type == INS_TOML_OTHER);
	const char *arr[] = {"arr", NULL};
	v = ins_toml_get(&t, arr);
	TU_CHECK(v && v->type == INS_TOML_ARRAY && v->n_items == 3);
	if (v && v->n_items == 3)
		TU_CHECK_STR(v->items[2], "three");
	const char *deep[] = {"inl", "y", "z", NULL};
	TU_CHECK_STR(get_s(&t, deep), "deep");
	ins_toml_free(&t);
}

/* Each is refused with the line and what is wrong. */
static void test_hostile(void)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
	    {"a = \"open\n", "line 1: a string without its closing quote"},
	    {"a = 1\nb = 'x' c\n", "line 2: text after a value"},
	    {"a = \"\"\"x\"\"\"\n", "line 1: multi-line strings are not read"},
	    {"a = \"\\q\"\n", "line 1: an unknown escape"},
	    {"a = \"\\ud800\"\n", "line 1: an escape that is no Unicode scalar value"},
	    {"a = \"\\u12\"\n", "line 1: an unknown escape"},
	    {"[a\nb = 1\n", "line 1: ']' expected"},
	    {"[[a]\n", "line 1: ']]' expected"},
	    {"a = bare\n", "line 1: an unknown value"},
	    {"= 1\n", "line 1: a key expected"},
	    {"a 1\n", "line 1: '=' expected after a key"},
	    {"a = [1, 2\n", "',' or ']' expected"},
	    {"a = { b = 1\n", "',' or '}' expected"},
	    {"a = 1\na = 2\n", "the key a is defined twice"},
	    {"[t]\nx = 1\n[t]\nx = 2\n", "the key t.x is defined twice"},
	    {"a = \"tab\x01\"\n", "a control character in a string"},
	    {"# bell \x07\n", "a control character in a comment"},
	    {"a = \n", "line 1: a value expected"},
	    {"a = i", "line 1: an unknown value"}, /* short, unterminated: fuzz_toml found it */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ins_toml t;
		cm_error e = {0};
		int rc = ins_toml_parse(&t, bad[i].text, strlen(bad[i].text), &e);
		TU_CHECK_MSG(rc == CM_EINVAL && strstr(e.msg, bad[i].want), "case %zu: rc %d, '%s'",
			     i, rc, e.msg);
		TU_CHECK(t.n == 0 && t.v == NULL);
	}
	/* a NUL byte, nesting, sizes and counts past the caps */
	ins_toml t;
	cm_error e = {0};
	TU_CHECK(ins_toml_parse(&t, "a = 1\0b = 2", 11, &e) == CM_EINVAL && strstr(e.msg, "NUL"));
	char deep[200];
	memset(deep, '[', 100);
	snprintf(deep + 100, sizeof(deep) - 100, "\n");
	char nest[220];
	snprintf(nest, sizeof(nest), "a = %s", deep);
	TU_CHECK(ins_toml_parse(&t, nest, strlen(nest), &e) == CM_EINVAL &&
		 strstr(e.msg, "nested too deeply"));
	cm_buf big = CM_BUF_INIT;
	big.limit = (size_t)8 << 20;
	for (int i = 0; i < 17000; i++)
		cm_buf_appendf(&big, NULL, "k%d = %d\n", i, i);
	TU_CHECK(ins_toml_parse(&t, big.data, big.len, &e) == CM_EINVAL &&
		 strstr(e.msg, "more values than the cap"));
	TU_CHECK(ins_toml_parse(&t, big.data, INS_TOML_TEXT_MAX + 1, &e) == CM_EINVAL &&
		 strstr(e.msg, "more than"));
	cm_buf_free(&big);
	char longkey[1200];
	memset(longkey, 'k', 1100);
	snprintf(longkey + 1100, sizeof(longkey) - 1100, " = 1\n");
	TU_CHECK(ins_toml_parse(&t, longkey, strlen(longkey), &e) == CM_EINVAL &&
		 strstr(e.msg, "longer than the cap"));
	/* a long table path repeated under many values, many arrays of tables */
	cm_buf amp = CM_BUF_INIT;
	amp.limit = (size_t)8 << 20;
	cm_buf_append(&amp, "[", 1, NULL);
	for (int i = 0; i < 60; i++)
		cm_buf_appendf(&amp, NULL, "%s%01000d", i ? "." : "", i);
	cm_buf_append(&amp, "]\n", 2, NULL);
	for (int i = 0; i < 16000; i++)
		cm_buf_appendf(&amp, NULL, "k%d=1\n", i);
	TU_CHECK(ins_toml_parse(&t, amp.data, amp.len, &e) == CM_EINVAL &&
		 strstr(e.msg, "keys longer than the cap"));
	amp.len = 0;
	for (int i = 0; i < 300; i++)
		cm_buf_appendf(&amp, NULL, "[[a%d]]\n", i);
	TU_CHECK(ins_toml_parse(&t, amp.data, amp.len, &e) == CM_EINVAL &&
		 strstr(e.msg, "line 257: more arrays of tables than the cap"));
	cm_buf_free(&amp);
	/* every prefix of a valid document parses or fails cleanly */
	const char *doc = "[p.'q'.r]\n  s = 'v' # c\n  [[x.y]]\n  z = [\"a\", {k = 'v'}]\n";
	for (size_t l = 0; l <= strlen(doc); l++) {
		int rc = ins_toml_parse(&t, doc, l, &e);
		TU_CHECK(rc == 0 || rc == CM_EINVAL);
		ins_toml_free(&t);
	}
}

int main(void)
{
	TU_RUN(test_dump_v2);
	TU_RUN(test_dump_v3);
	TU_RUN(test_values);
	TU_RUN(test_hostile);
	TU_EXIT();
}
