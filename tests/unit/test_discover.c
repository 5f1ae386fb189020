/* Image discovery and digest pinning (builder/bld_discover.c,
 * builder/bld_manifests.c). The builder has no library of its own yet, so
 * the sources are compiled into this test. */
#include <yaml.h>

#include "bld_bundle.h"
#include "cm_file.h"
#include "bld_discover.h"
#include "bld_manifests.h"

#include "tu.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static int add(bld_yset *s, const char *name, const char *text, cm_error *err)
{
	cm_buf b = CM_BUF_INIT;
	b.limit = (size_t)64 << 20;
	if (cm_buf_append(&b, text, strlen(text), err) < 0)
		return -1;
	return bld_yset_add_text(s, name, &b, err);
}

static void test_fixture_exact(void)
{
	const char *top = getenv("FERRY_TOP");
	char dir[4096], exp[4200];
	snprintf(dir, sizeof(dir), "%s/tests/fixtures/discover", top ? top : ".");
	snprintf(exp, sizeof(exp), "%s/expected.txt", dir);
	bld_manifests m;
	memset(&m, 0, sizeof(m));
	cm_error err = {0};
	int rc = bld_manifests_add_path(&m, dir, 0, &err);
	if (rc < 0)
		printf("#   %s\n", err.msg);
	TU_CHECK(rc == 0);
	TU_CHECK(m.n_files == 4);
	bld_found_list fl;
	TU_CHECK(bld_yset_found(&fl, &m.set, &err) == 0);
	cm_buf got = CM_BUF_INIT, want = CM_BUF_INIT;
	for (size_t i = 0; i < fl.n; i++)
		cm_buf_appendf(&got, &err, "%s%s\n", fl.v[i].ref,
			       fl.v[i].suggested ? "  # suggested" : "");
	TU_CHECK(cm_file_read(&want, exp, 1 << 20, &err) == 0);
	TU_CHECK(got.data && want.data);
	if (got.data && want.data)
		TU_CHECK_STR(got.data, want.data);
	/* kind counts of the first file */
	const bld_ysrc *s0 = &m.set.src[0];
	TU_CHECK(s0->n_docs == 8 && s0->n_kinds == 8);
	cm_buf_free(&got);
	cm_buf_free(&want);
	bld_found_list_free(&fl);
	bld_manifests_free(&m);
}

static void test_qualified(void)
{
	static const struct {
		const char *t;
		int want;
	} cases[] = {
	    {"gcr.io/ml-pipeline/kfp-launcher:2.3.0", 1},
	    {"localhost:5000/a/b:1", 1},
	    {"registry.example.com:5000/tools/debug:2.0", 1},
	    {"kserve/agent@" D1, 1},
	    {"quay.io/x/y", 1},
	    {"kubeflow.org/v1", 0}, /* an API group, not an image */
	    {"app.kubernetes.io/name", 0},
	    {"http://gcr.io/x/y:1", 0},	 /* a URL */
	    {"kserve/agent:v0.16.0", 0}, /* no host, no digest */
	    {"nginx", 0},
	    {"example.com/UPPER/case:1", 0}, /* not a valid name */
	    {"127.0.0.1:8080/metrics", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = bld_discover_qualified(cases[i].t);
		if (got != cases[i].want)
			printf("#   %s: got %d\n", cases[i].t, got);
		TU_CHECK(got == cases[i].want);
	}
}

/* Every scalar of two YAML texts, as a list of "value" lines. */
static int scalars(cm_buf *out, const char *text, size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	cm_error err;
	int rc = 0;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = -1;
			break;
		}
		int end = ev.type == YAML_STREAM_END_EVENT;
		if (ev.type == YAML_SCALAR_EVENT) {
			cm_buf_append(out, ev.data.scalar.value, ev.data.scalar.length, &err);
			cm_buf_append(out, "\n--\n", 4, &err);
		}
		yaml_event_delete(&ev);
		if (end)
			break;
	}
	yaml_parser_delete(&p);
	return rc;
}

static void test_pin_only_images_change(void)
{
	const char *text = "# keep me\n"
			   "apiVersion: v1\n"
			   "kind: Pod\n"
			   "metadata: {name: p, annotations: {a: \"\xc3\xbcn\xc3\xaf"
			   "c\xc3\xb6"
			   "d\xc3\xa9\"}}  # and me\n"
			   "spec:\n"
			   "  containers:\n"
			   "  - name: a\n"
			   "    image: nginx:1.25\n"
			   "    args: [\"--x=registry.example.com/t/side:2 --y\", \"plain\"]\n"
			   "    env:\n"
			   "    - {name: E, value: 'registry.example.com/t/side:2'}\n"
			   "  - {name: b, image: \"registry.example.com/t/side:2\"}\n"
			   "  - name: c\n"
			   "    image: 'docker.io/library/other:1'\n"
			   "---\n"
			   "apiVersion: v1\n"
			   "kind: ConfigMap\n"
			   "metadata: {name: c}\n"
			   "data:\n"
			   "  j: |\n"
			   "    {\"image\": \"registry.example.com/t/side:2\"}\n"
			   "    registry.example.com/t/side:2.\n";
	const char *want_text =
	    "# keep me\n"
	    "apiVersion: v1\n"
	    "kind: Pod\n"
	    "metadata: {name: p, annotations: {a: \"\xc3\xbcn\xc3\xaf"
	    "c\xc3\xb6"
	    "d\xc3\xa9\"}}  # and me\n"
	    "spec:\n"
	    "  containers:\n"
	    "  - name: a\n"
	    "    image: nginx@" DA "\n"
	    "    args: [\"--x=registry.example.com/t/side@" DB " --y\", \"plain\"]\n"
	    "    env:\n"
	    "    - {name: E, value: 'registry.example.com/t/side@" DB "'}\n"
	    "  - {name: b, image: \"registry.example.com/t/side@" DB "\"}\n"
	    "  - name: c\n"
	    "    image: 'docker.io/library/other:1'\n"
	    "---\n"
	    "apiVersion: v1\n"
	    "kind: ConfigMap\n"
	    "metadata: {name: c}\n"
	    "data:\n"
	    "  j: |\n"
	    "    {\"image\": \"registry.example.com/t/side@" DB "\"}\n"
	    "    registry.example.com/t/side@" DB ".\n";
	bld_yset s = BLD_YSET_INIT;
	cm_error err = {0};
	TU_CHECK(add(&s, "pin.yaml", text, &err) == 0);
	reg_image imgs[2];
	memset(imgs, 0, sizeof(imgs));
	snprintf(imgs[0].ref, sizeof(imgs[0].ref), "docker.io/library/nginx:1.25");
	snprintf(imgs[0].root.digest.s, sizeof(imgs[0].root.digest.s), DA);
	snprintf(imgs[1].ref, sizeof(imgs[1].ref), "registry.example.com/t/side:2");
	snprintf(imgs[1].root.digest.s, sizeof(imgs[1].root.digest.s), DB);
	cm_buf out;
	size_t pinned = 0, nu = 0;
	char **unb = NULL;
	int rc = bld_pin_text(&out, &s, 0, imgs, 2, 1, &pinned, &unb, &nu, &err);
	if (rc < 0)
		printf("#   %s\n", err.msg);
	TU_CHECK(rc == 0);
	TU_CHECK(pinned == 6);
	TU_CHECK(nu == 1 && strcmp(unb[0], "docker.io/library/other:1") == 0);
	if (rc == 0) {
		TU_CHECK_STR(out.data, want_text);
		/* libyaml's view: every scalar equal but the image values */
		cm_buf a = CM_BUF_INIT, b = CM_BUF_INIT, c = CM_BUF_INIT;
		TU_CHECK(scalars(&a, out.data, out.len) == 0);
		TU_CHECK(scalars(&b, want_text, strlen(want_text)) == 0);
		TU_CHECK(scalars(&c, text, strlen(text)) == 0);
		TU_CHECK(a.data && b.data && strcmp(a.data, b.data) == 0);
		/* and the number of scalars did not change */
		size_t na = 0, nc = 0;
		for (const char *p = a.data; (p = strstr(p, "\n--\n")); p += 4)
			na++;
		for (const char *p = c.data; (p = strstr(p, "\n--\n")); p += 4)
			nc++;
		TU_CHECK(na == nc && na > 20);
		cm_buf_free(&a);
		cm_buf_free(&b);
		cm_buf_free(&c);
	}
	/* without pin_suggested only image fields change */
	cm_buf out2;
	TU_CHECK(bld_pin_text(&out2, &s, 0, imgs, 2, 0, &pinned, NULL, NULL, &err) == 0);
	TU_CHECK(pinned == 2);
	TU_CHECK(strstr(out2.data, "value: 'registry.example.com/t/side:2'") != NULL);
	cm_buf_free(&out2);
	cm_buf_free(&out);
	for (size_t i = 0; i < nu; i++)
		free(unb[i]);
	free(unb);
	bld_yset_free(&s);
}

static void test_errors_name_the_place(void)
{
	cm_error err = {0};
	bld_yset s = BLD_YSET_INIT;
	TU_CHECK(
	    add(&s, "a.yaml", "kind: Pod\nmetadata: {name: x}\n---\n\napiVersion: v1\n", &err) < 0);
	TU_CHECK(strstr(err.msg, "a.yaml:5:1: document 2 has no 'kind'") != NULL);
	bld_yset_free(&s);

	size_t n = (3u << 20) + 10;
	char *big = malloc(n + 64);
	TU_CHECK(big != NULL);
	if (big) {
		int h = snprintf(big, 64, "kind: ConfigMap\ndata:\n  x: ");
		memset(big + h, 'z', n);
		memcpy(big + h + n, "\n", 2);
		bld_yset s2 = BLD_YSET_INIT;
		TU_CHECK(add(&s2, "b.yaml", big, &err) < 0);
		TU_CHECK(
		    strstr(
			err.msg,
			"b.yaml:3:6: document 1: a value of 3145738 bytes is over the 2 MiB cap") !=
		    NULL);
		bld_yset_free(&s2);
		free(big);
	}
	bld_yset s3 = BLD_YSET_INIT;
	TU_CHECK(add(&s3, "c.yaml", "kind: Pod\nspec: [unclosed\n", &err) < 0);
	TU_CHECK(strstr(err.msg, "c.yaml:3:1: YAML syntax error") != NULL);
	bld_yset_free(&s3);

	/* aliases cannot blow up the walk */
	cm_buf bomb = CM_BUF_INIT;
	cm_buf_appendf(&bomb, &err, "kind: Pod\nspec:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 12; i++)
		cm_buf_appendf(
		    &bomb, &err,
		    "  a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i,
		    i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
	bld_yset s4 = BLD_YSET_INIT;
	TU_CHECK(bld_yset_add_text(&s4, "bomb.yaml", &bomb, &err) < 0);
	TU_CHECK(strstr(err.msg, "too many nodes to walk") != NULL);
	bld_yset_free(&s4);
}

static void test_list_and_empty_docs(void)
{
	cm_error err = {0};
	bld_yset s = BLD_YSET_INIT;
	TU_CHECK(add(&s, "l.yaml",
		     "---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n- kind: "
		     "Pod\n  metadata: {name: a}\n"
		     "  spec: {containers: [{name: c, image: busybox}]}\n---\n",
		     &err) == 0);
	TU_CHECK(s.n_occ == 1);
	if (s.n_occ == 1) {
		TU_CHECK_STR(s.occ[0].ref, "docker.io/library/busybox:latest");
		TU_CHECK_STR(s.occ[0].path, "items[0].spec.containers[0].image");
		TU_CHECK(s.occ[0].doc == 2);
		TU_CHECK_STR(s.occ[0].kind, "Pod");
	}
	TU_CHECK(s.src[0].n_docs == 1 && s.src[0].n_kinds == 1);
	bld_yset_free(&s);
}

static const bld_occ *occ_at(const bld_yset *s, const char *kind, const char *path)
{
	for (size_t i = 0; i < s->n_occ; i++)
		if (strcmp(s->occ[i].kind, kind) == 0 && strcmp(s->occ[i].path, path) == 0)
			return &s->occ[i];
	return NULL;
}

/* Kinds with no rule of their own: found by field names and shapes. */
static void test_generic_rules(void)
{
	const char *top = getenv("FERRY_TOP");
	char path[4096];
	snprintf(path, sizeof(path), "%s/tests/fixtures/discover/04-generic.yaml", top ? top : ".");
	bld_yset s = BLD_YSET_INIT;
	cm_error err = {0};
	int rc = bld_yset_add_file(&s, path, &err);
	if (rc < 0)
		printf("#   %s\n", err.msg);
	TU_CHECK(rc == 0);
	static const struct {
		const char *kind, *path, *ref, *rule;
		int suggested;
	} want[] = {
	    {"Widget", "metadata.annotations[\"sidecar.istio.io/proxyImage\"]",
	     "docker.io/istio/proxyv2:1.22.0", "field *Image", 0},
	    {"Widget", "spec.image", "registry.example.com/widgets/worker:3.1", "field image", 0},
	    {"Widget", "spec.defaultImage", "docker.io/example/default-runner:1.0", "field *Image",
	     0},
	    {"Widget", "spec.builder.sidecarImage", "ghcr.io/example/sidecar-helper:4",
	     "field *Image", 0},
	    {"Widget", "spec.container.image", "quay.io/example/init:2", "field image", 0},
	    {"Widget", "spec.container.args[0]", "gcr.io/example/helper:5",
	     "string scan (suggested)", 1},
	    {"Widget", "spec.extraContainers[0].image", "docker.io/example/extra:0.1",
	     "containers list", 0},
	    {"Widget", "spec.extraContainers[0].env[0].value", "quay.io/example/related:7",
	     "string scan (suggested)", 1},
	    {"ClusterStorageContainer", "spec.container.image",
	     "docker.io/kserve/storage-initializer:v0.16.0", "field image", 0},
	    {"ModelCache", "spec.storageUri", "models.ferry.local/bert-modelcar:v2",
	     "storageUri oci://", 0},
	    {"PodTemplate", "template.spec.containers[0].image", "docker.io/example/pod-template:1",
	     "containers list", 0},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const bld_occ *o = occ_at(&s, want[i].kind, want[i].path);
		TU_CHECK_MSG(o != NULL, "%s %s not found", want[i].kind, want[i].path);
		if (!o)
			continue;
		TU_CHECK_STR(o->ref, want[i].ref);
		TU_CHECK_STR(o->rule, want[i].rule);
		TU_CHECK(o->suggested == want[i].suggested && !o->ignored);
	}
	const bld_occ *u = occ_at(&s, "ModelCache", "spec.storageUri");
	TU_CHECK(u && strcmp(u->prefix, "oci://") == 0 &&
		 strcmp(u->value, "models.ferry.local/bert-modelcar:v2") == 0);
	/* values that are not references: kept as ignored, with the reason */
	static const struct {
		const char *path, *value, *why;
	} ign[] = {
	    {"spec.image", "IfNotPresent", "must be lowercase"},
	    {"spec.runnerImage", "{{.Image}}", "a template, filled in later"},
	    {"spec.previewImage", "true", "a YAML boolean"},
	    {"spec.cacheImage", "null", "a YAML null"},
	    {"spec.baseImage", "none", "a keyword"},
	    {"spec.buildImage", "12", "a YAML number"},
	};
	for (size_t i = 0; i < sizeof(ign) / sizeof(ign[0]); i++) {
		const bld_occ *o = occ_at(&s, "Gadget", ign[i].path);
		TU_CHECK_MSG(o != NULL, "Gadget %s not kept", ign[i].path);
		if (!o)
			continue;
		TU_CHECK(o->ignored && o->ref[0] == '\0');
		TU_CHECK_STR(o->value, ign[i].value);
		TU_CHECK_MSG(strstr(o->problem, ign[i].why) != NULL, "%s: problem '%s'",
			     ign[i].path, o->problem);
	}
	/* and nothing else: not imagePullPolicy, image_name, images, a
	 * mapping, s3://, *Images, labels, status, or a Secret */
	size_t n_gadget = 0;
	for (size_t i = 0; i < s.n_occ; i++) {
		const bld_occ *o = &s.occ[i];
		TU_CHECK_MSG(strstr(o->path, "imagePullPolicy") == NULL &&
				 strstr(o->path, "status") == NULL &&
				 strstr(o->path, "abels") == NULL && strcmp(o->kind, "Secret") != 0,
			     "unexpected %s %s", o->kind, o->path);
		n_gadget += strcmp(o->kind, "Gadget") == 0;
	}
	TU_CHECK(n_gadget == sizeof(ign) / sizeof(ign[0]));
	TU_CHECK(s.n_occ == sizeof(want) / sizeof(want[0]) + sizeof(ign) / sizeof(ign[0]));
	bld_yset_free(&s);
}

static void test_not_ref(void)
{
	static const struct {
		const char *v;
		int plain;
		const char *why; /* NULL: a reference candidate */
	} cases[] = {
	    {"nginx:1.25", 1, NULL},
	    {"true", 1, "a YAML boolean"},
	    {"true", 0, NULL}, /* quoted: a string (and a valid name) */
	    {"Off", 1, "a YAML boolean"},
	    {"~", 1, "a YAML null"},
	    {"1.5", 1, "a YAML number"},
	    {"0x1F", 1, "a YAML number"},
	    {"1.5", 0, NULL},
	    {"$(IMAGE)", 0, "a template, filled in later"},
	    {"${REGISTRY}/x:1", 1, "a template, filled in later"},
	    {"{{ .Values.image }}", 0, "a template, filled in later"},
	    {"None", 0, "a keyword"},
	    {"", 0, "empty"},
	    {"registry.example.com/a/b@sha256:"
	     "1111111111111111111111111111111111111111111111111111111111111111",
	     1, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got =
		    bld_discover_not_ref(cases[i].v, strlen(cases[i].v), cases[i].plain);
		if (!cases[i].why)
			TU_CHECK_MSG(got == NULL, "'%s': %s", cases[i].v, got);
		else
			TU_CHECK_MSG(got && strcmp(got, cases[i].why) == 0, "'%s': got %s",
				     cases[i].v, got ? got : "NULL");
	}
}

/* storageUri: oci://REF is pinned after the prefix, in each quote style. */
static void test_pin_storage_uri(void)
{
	const char *text = "apiVersion: serving.kserve.io/v1beta1\n"
			   "kind: InferenceService\n"
			   "metadata: {name: m}\n"
			   "spec:\n"
			   "  predictor:\n"
			   "    model:\n"
			   "      storageUri: oci://models.ferry.local/m-modelcar:1  # plain\n"
			   "    tolerations: []\n"
			   "---\n"
			   "kind: ModelCache\n"
			   "spec: {storageUri: \"oci://models.ferry.local/m-modelcar:1\", "
			   "other: 'oci://models.ferry.local/m-modelcar:1'}\n"
			   "---\n"
			   "kind: ModelCache\n"
			   "spec: {storageUri: 'oci://models.ferry.local/m-modelcar:1'}\n";
	const char *want_text =
	    "apiVersion: serving.kserve.io/v1beta1\n"
	    "kind: InferenceService\n"
	    "metadata: {name: m}\n"
	    "spec:\n"
	    "  predictor:\n"
	    "    model:\n"
	    "      storageUri: oci://models.ferry.local/m-modelcar@" DA "  # plain\n"
	    "    tolerations: []\n"
	    "---\n"
	    "kind: ModelCache\n"
	    "spec: {storageUri: \"oci://models.ferry.local/m-modelcar@" DA "\", "
	    "other: 'oci://models.ferry.local/m-modelcar:1'}\n"
	    "---\n"
	    "kind: ModelCache\n"
	    "spec: {storageUri: 'oci://models.ferry.local/m-modelcar@" DA "'}\n";
	bld_yset s = BLD_YSET_INIT;
	cm_error err = {0};
	TU_CHECK(add(&s, "isvc.yaml", text, &err) == 0);
	TU_CHECK(s.n_occ == 3);
	reg_image img;
	memset(&img, 0, sizeof(img));
	snprintf(img.ref, sizeof(img.ref), "models.ferry.local/m-modelcar:1");
	snprintf(img.root.digest.s, sizeof(img.root.digest.s), DA);
	cm_buf out;
	size_t pinned = 0;
	int rc = bld_pin_text(&out, &s, 0, &img, 1, 0, &pinned, NULL, NULL, &err);
	if (rc < 0)
		printf("#   %s\n", err.msg);
	TU_CHECK(rc == 0 && pinned == 3);
	if (rc == 0) {
		TU_CHECK_STR(out.data, want_text);
		cm_buf_free(&out);
	}
	bld_yset_free(&s);
}

int main(void)
{
	TU_RUN(test_fixture_exact);
	TU_RUN(test_qualified);
	TU_RUN(test_pin_only_images_change);
	TU_RUN(test_errors_name_the_place);
	TU_RUN(test_list_and_empty_docs);
	TU_RUN(test_generic_rules);
	TU_RUN(test_not_ref);
	TU_RUN(test_pin_storage_uri);
	TU_EXIT();
}
