/* The bundle spec parser (builder/bld_spec.c): valid specs, and errors
 * that name file:line:column. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bld_spec.h"
#include "cm_error.h"
#include "cm_file.h"
#include "tu.h"

static char g_dir[] = "/tmp/ferry-spec-test.XXXXXX";
static int g_seq;

/* Write text to a fresh spec file; path receives its name. */
static int write_spec(char *path, size_t n, const char *text)
{
	cm_error err = {0};
	snprintf(path, n, "%s/spec%d.yaml", g_dir, ++g_seq);
	return cm_file_write_atomic(path, text, strlen(text), 0644, &err);
}

/* The spec must be refused with CM_EINVAL, a message starting
 * "PATH:LINE:COL: " (COL >= 1) and holding want. */
static void expect_error(const char *text, int line, const char *want)
{
	char path[512];
	int wrote = write_spec(path, sizeof(path), text);
	TU_CHECK_MSG(wrote == 0, "cannot write spec");
	if (wrote != 0)
		return;
	bld_spec s;
	cm_error err = {0};
	int rc = bld_spec_load(&s, path, &err);
	char prefix[600];
	snprintf(prefix, sizeof(prefix), "%s:%d:", path, line);
	size_t pl = strlen(prefix);
	int ok = rc == CM_EINVAL && err.code == CM_EINVAL && strncmp(err.msg, prefix, pl) == 0;
	if (ok) {
		char *end = NULL;
		long col = strtol(err.msg + pl, &end, 10);
		ok = col >= 1 && end && end[0] == ':' && end[1] == ' ';
	}
	if (ok && want && !strstr(err.msg, want))
		ok = 0;
	TU_CHECK_MSG(ok, "spec (line %d, want '%s'): rc=%d msg='%s'", line, want ? want : "", rc,
		     err.msg);
	if (rc == 0)
		bld_spec_free(&s);
	/* a failed load leaves nothing to free, and freeing again is safe */
	bld_spec_free(&s);
}

/* The column reported for a spec error. */
static long error_col(const char *text)
{
	char path[512];
	if (write_spec(path, sizeof(path), text) < 0)
		return -1;
	bld_spec s;
	cm_error err = {0};
	if (bld_spec_load(&s, path, &err) == 0) {
		bld_spec_free(&s);
		return -1;
	}
	const char *p = err.msg + strlen(path);
	if (*p != ':')
		return -1;
	p = strchr(p + 1, ':');
	return p ? strtol(p + 1, NULL, 10) : -1;
}

#define HEAD "apiVersion: ferry/v1\nkind: Bundle\nmetadata:\n  name: demo\n"

static void test_valid_minimal(void)
{
	char path[512];
	TU_CHECK(write_spec(path, sizeof(path), HEAD) == 0);
	bld_spec s;
	cm_error err = {0};
	int rc = bld_spec_load(&s, path, &err);
	TU_CHECK(rc == 0);
	if (rc < 0) {
		printf("#   %s\n", err.msg);
		return;
	}
	TU_CHECK_STR(s.name, "demo");
	TU_CHECK_STR(s.version, "");
	TU_CHECK_STR(s.file, path);
	TU_CHECK_STR(s.dir, g_dir);
	/* platforms default to linux/amd64 */
	TU_CHECK(s.platforms && s.platforms[0] && !s.platforms[1]);
	if (s.platforms && s.platforms[0])
		TU_CHECK_STR(s.platforms[0], "linux/amd64");
	TU_CHECK(s.n_images == 0 && s.n_manifests == 0 && s.n_models == 0);
	TU_CHECK(s.text.len == strlen(HEAD) && memcmp(s.text.data, HEAD, s.text.len) == 0);
	bld_spec_free(&s);
	bld_spec_free(NULL);
}

static void test_valid_full(void)
{
	static const char text[] =
	    "# a comment\n"
	    "apiVersion: ferry/v1\n"
	    "kind: Bundle\n"
	    "metadata:\n"
	    "  name: kubeflow-lab\n"
	    "  version: \"1.8\"\n"
	    "platforms: [linux/amd64, linux/arm64]\n"
	    "images:\n"
	    "  - docker.io/library/mysql:8.0.29\n"
	    "  - ref: example.local/demo/hello:1.0\n"
	    "    from: oci-layout:./images/hello:1.0\n"
	    "    platforms: [all]\n"
	    "  - ref: quay.io/demo/tool:2\n"
	    "    from: docker-archive:./tool.tar\n"
	    "manifests:\n"
	    "  - path: ./manifests\n"
	    "  - kustomize: ./overlay\n"
	    "models:\n"
	    "  - {name: mnist, version: \"1\", path: ./models/mnist.onnx, sha256: "
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad}\n"
	    "  - name: bert\n"
	    "    version: v2.0\n"
	    "    url: https://example.com/bert.bin\n";
	char path[512];
	TU_CHECK(write_spec(path, sizeof(path), text) == 0);
	bld_spec s;
	cm_error err = {0};
	int rc = bld_spec_load(&s, path, &err);
	TU_CHECK(rc == 0);
	if (rc < 0) {
		printf("#   %s\n", err.msg);
		return;
	}
	TU_CHECK_STR(s.name, "kubeflow-lab");
	TU_CHECK_STR(s.version, "1.8");
	TU_CHECK(s.platforms && s.platforms[0] && s.platforms[1] && !s.platforms[2]);
	if (s.platforms && s.platforms[0] && s.platforms[1]) {
		TU_CHECK_STR(s.platforms[0], "linux/amd64");
		TU_CHECK_STR(s.platforms[1], "linux/arm64");
	}
	TU_CHECK(s.n_images == 3);
	if (s.n_images == 3) {
		TU_CHECK_STR(s.images[0].ref, "docker.io/library/mysql:8.0.29");
		TU_CHECK_STR(s.images[0].from, "");
		TU_CHECK(s.images[0].platforms == NULL);
		TU_CHECK(s.images[0].line == 9);
		TU_CHECK_STR(s.images[1].ref, "example.local/demo/hello:1.0");
		TU_CHECK_STR(s.images[1].from, "oci-layout:./images/hello:1.0");
		TU_CHECK(s.images[1].platforms && s.images[1].platforms[0] &&
			 !s.images[1].platforms[1]);
		if (s.images[1].platforms && s.images[1].platforms[0])
			TU_CHECK_STR(s.images[1].platforms[0], "all");
		TU_CHECK(s.images[1].line == 10);
		TU_CHECK_STR(s.images[2].from, "docker-archive:./tool.tar");
		TU_CHECK(s.images[2].line == 13);
	}
	TU_CHECK(s.n_manifests == 2);
	if (s.n_manifests == 2) {
		TU_CHECK_STR(s.manifests[0].path, "./manifests");
		TU_CHECK_STR(s.manifests[1].kustomize, "./overlay");
		TU_CHECK(s.manifests[1].line == 17);
	}
	TU_CHECK(s.n_models == 2);
	if (s.n_models == 2) {
		TU_CHECK_STR(s.models[0].name, "mnist");
		TU_CHECK_STR(s.models[0].version, "1");
		TU_CHECK_STR(s.models[0].path, "./models/mnist.onnx");
		TU_CHECK_STR(s.models[0].sha256,
			     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
		TU_CHECK_STR(s.models[1].name, "bert");
		TU_CHECK_STR(s.models[1].version, "v2.0");
		TU_CHECK_STR(s.models[1].url, "https://example.com/bert.bin");
		TU_CHECK(s.models[1].line == 20);
	}
	bld_spec_free(&s);
}

static void test_unknown_key(void)
{
	expect_error(HEAD "imagez:\n  - a\n", 5, "unknown key 'imagez'");
	expect_error(HEAD "images:\n  - ref: a\n    form: oci-layout:x\n", 7, "unknown key 'form'");
	expect_error("apiVersion: ferry/v1\nkind: Bundle\nmetadata:\n  name: demo\n  labels: x\n",
		     5, "unknown key 'labels'");
	expect_error(HEAD "manifests:\n  - path: a\n    kustomise: b\n", 7,
		     "unknown key 'kustomise'");
	expect_error(HEAD "models:\n  - name: m\n    version: \"1\"\n    path: x\n    sha: y\n", 9,
		     "unknown key 'sha'");
	/* the column points at the key */
	TU_CHECK(error_col(HEAD "images:\n  - ref: a\n    form: oci-layout:x\n") == 5);
}

static void test_wrong_type(void)
{
	expect_error(HEAD "images: \"x\"\n", 5, "'images' must be a list");
	TU_CHECK(error_col(HEAD "images: \"x\"\n") == 9);
	expect_error(HEAD "platforms: linux/amd64\n", 5, "'platforms' must be a list");
	expect_error(HEAD "images:\n  - ref: [a, b]\n", 6, "'ref' must be a scalar");
	expect_error(HEAD "images:\n  - - nested\n", 6, "image must be");
	expect_error("apiVersion: ferry/v1\nkind: Bundle\nmetadata: demo\n", 3,
		     "'metadata' must be a mapping");
	expect_error(HEAD "manifests:\n  - ./manifests\n", 6, "must be a mapping");
	expect_error(HEAD "models: {name: m}\n", 5, "'models' must be a list");
	expect_error("- a\n- b\n", 1, "must be a mapping");
}

static void test_missing_fields(void)
{
	/* metadata without a name: the error points at metadata */
	expect_error("apiVersion: ferry/v1\nkind: Bundle\n\nmetadata:\n  version: \"1\"\n", 4,
		     "metadata.name");
	/* no metadata at all: the document */
	expect_error("apiVersion: ferry/v1\nkind: Bundle\n", 1, "metadata.name");
	expect_error("kind: Bundle\nmetadata:\n  name: demo\n", 1, "apiVersion");
	expect_error("apiVersion: ferry/v1\nmetadata:\n  name: demo\n", 1, "kind");
	expect_error(HEAD "images:\n  - from: oci-layout:x\n", 6, "'ref'");
	/* fuzz_spec found these accepted as images with an empty reference */
	expect_error(HEAD "images:\n  - \n  - a\n", 6, "image reference is empty");
	expect_error(HEAD "images:\n  - ''\n", 6, "image reference is empty");
	expect_error(HEAD "images: [a, \"\"]\n", 5, "image reference is empty");
	expect_error(HEAD "manifests:\n  - path: a\n    kustomize: b\n", 6, "exactly one");
	expect_error(HEAD "models:\n  - name: m\n    path: x\n", 6, "'version'");
	expect_error(HEAD "models:\n  - name: m\n    version: \"1\"\n", 6,
		     "exactly one of 'path' or 'url'");
}

static void test_bad_values(void)
{
	expect_error("apiVersion: ferry/v2\nkind: Bundle\nmetadata:\n  name: demo\n", 1,
		     "unsupported apiVersion 'ferry/v2'");
	TU_CHECK(error_col("apiVersion: ferry/v2\nkind: Bundle\nmetadata:\n  name: demo\n") == 13);
	expect_error("kind: Bundle\n\napiVersion: v1\nmetadata:\n  name: demo\n", 3,
		     "unsupported apiVersion");
	expect_error("apiVersion: ferry/v1\nkind: Pod\nmetadata:\n  name: demo\n", 2,
		     "unsupported kind 'Pod'");
	expect_error("apiVersion: ferry/v1\nkind: Bundle\nmetadata:\n  name: ../x\n", 4,
		     "metadata.name");
	expect_error(HEAD "models:\n  - name: ../evil\n    version: \"1\"\n    path: x\n", 6,
		     "letters, digits");
	expect_error(HEAD "models:\n  - name: m\n    version: a/b\n    path: x\n", 6,
		     "letters, digits");
	/* a password in a model url would be kept in bundle.json */
	expect_error(HEAD "models:\n  - name: m\n    version: \"1\"\n    url: "
			  "https://u:secret@models.example/w.bin\n",
		     6, "~/.netrc");
}

/* registries: realm-credentials, and an entry without endpoint (the
 * registry itself) */
static void test_realm_credentials(void)
{
	static const char text[] = HEAD "registries:\n"
					"  registry.gitlab.com:\n"
					"    realm-credentials: [gitlab.com, \"127.0.0.2:5001\"]\n"
					"  docker.io:\n"
					"    endpoint: 127.0.0.1:5000\n";
	char path[512];
	TU_CHECK(write_spec(path, sizeof(path), text) == 0);
	bld_spec s;
	cm_error err = {0};
	TU_CHECK(bld_spec_load(&s, path, &err) == 0);
	if (err.code == 0 && s.n_registries == 2) {
		TU_CHECK_STR(s.registries[0].endpoint, "registry.gitlab.com");
		TU_CHECK(s.registries[0].n_realm_creds == 2);
		TU_CHECK_STR(s.registries[0].realm_creds[0], "gitlab.com");
		TU_CHECK_STR(s.registries[0].realm_creds[1], "127.0.0.2:5001");
		TU_CHECK(s.registries[1].n_realm_creds == 0);
	} else {
		TU_CHECK(!"two registries");
	}
	bld_spec_free(&s);
	expect_error(HEAD "registries:\n  r.io:\n    realm-credentials: gitlab.com\n", 7,
		     "'realm-credentials' must be a list");
	expect_error(HEAD "registries:\n  r.io:\n    realm-credentials: [https://gitlab.com]\n", 7,
		     "is not a host or host:port");
	expect_error(HEAD
		     "registries:\n  r.io:\n    realm-credentials: [a, b, c, d, e, f, g, h, i]\n",
		     7, "more than 8 hosts");
}

/* referrers: all | signatures | none, global (default all) and per image */
static void test_referrers(void)
{
	static const char text[] = HEAD "referrers: signatures\n"
					"images:\n"
					"  - a:1\n"
					"  - ref: b:1\n"
					"    referrers: none\n"
					"  - ref: c:1\n"
					"    referrers: all\n";
	char path[512];
	TU_CHECK(write_spec(path, sizeof(path), text) == 0);
	bld_spec s;
	cm_error err = {0};
	TU_CHECK(bld_spec_load(&s, path, &err) == 0);
	if (err.code == 0 && s.n_images == 3) {
		TU_CHECK(s.referrers == BLD_REFERRERS_SIGNATURES);
		TU_CHECK(s.images[0].referrers == BLD_REFERRERS_DEFAULT);
		TU_CHECK(s.images[1].referrers == BLD_REFERRERS_NONE);
		TU_CHECK(s.images[2].referrers == BLD_REFERRERS_ALL);
	} else {
		TU_CHECK(!"three images");
	}
	bld_spec_free(&s);
	TU_CHECK(write_spec(path, sizeof(path), HEAD) == 0);
	TU_CHECK(bld_spec_load(&s, path, &err) == 0);
	if (err.code == 0)
		TU_CHECK(s.referrers == BLD_REFERRERS_ALL);
	bld_spec_free(&s);
	expect_error(HEAD "referrers: some\n", 5, "must be all, signatures or none, not 'some'");
	expect_error(HEAD "images:\n  - ref: a:1\n    referrers: [all]\n", 7, "referrers");
}

static void test_yaml_syntax(void)
{
	expect_error(HEAD "images:\n  - ref: a\n    from: [unclosed\n", 8, "YAML error");
	expect_error("apiVersion: ferry/v1\nkind: Bundle: x\n", 2, "YAML error");
	expect_error(HEAD "images:\n  - \"unterminated\n", 7, "YAML error");
	expect_error("apiVersion: ferry/v1\nkind: Bundle\nmetadata:\n  name: demo\n\tversion: 1\n",
		     5, "YAML error");
}

static void test_duplicate_keys(void)
{
	/* a repeated key would silently win or lose: refused, naming the repeat */
	expect_error(HEAD "images:\n  - a\nimages:\n  - b\n  - c\n", 7, "'images'");
	expect_error(HEAD "platforms: [linux/amd64]\nplatforms: [all]\n", 6, "'platforms'");
	expect_error("apiVersion: ferry/v1\nkind: Bundle\nmetadata:\n  name: a\n  name: b\n", 5,
		     "'name'");
	expect_error(HEAD "images:\n  - ref: a\n    ref: b\n", 7, "'ref'");
	expect_error(HEAD "manifests:\n  - path: a\nmanifests:\n  - path: b\n", 7, "'manifests'");
	expect_error(HEAD "models:\n  - {name: a, version: \"1\", path: x, path: y}\n", 6,
		     "'path'");
}

static void test_file_errors(void)
{
	bld_spec s;
	cm_error err = {0};
	char path[512];
	snprintf(path, sizeof(path), "%s/does-not-exist.yaml", g_dir);
	TU_CHECK(bld_spec_load(&s, path, &err) == CM_EIO);
	TU_CHECK(strstr(err.msg, path) != NULL);
	bld_spec_free(&s);
	/* an empty file */
	TU_CHECK(write_spec(path, sizeof(path), "") == 0);
	cm_error e2 = {0};
	TU_CHECK(bld_spec_load(&s, path, &e2) == CM_EINVAL);
	TU_CHECK(strstr(e2.msg, path) != NULL);
	/* a spec over the size cap */
	size_t big = BLD_SPEC_MAX + 10;
	char *t = malloc(big + 1);
	TU_CHECK(t != NULL);
	if (t) {
		memset(t, '#', big);
		t[big] = '\0';
		TU_CHECK(write_spec(path, sizeof(path), t) == 0);
		cm_error e3 = {0};
		TU_CHECK(bld_spec_load(&s, path, &e3) < 0);
		free(t);
	}
}

/* models[].image: the modelcar's full reference; the default host. */
static void test_model_image(void)
{
	static const char text[] =
	    HEAD "models:\n"
		 "  - {name: mnist, version: \"1.0\", path: a}\n"
		 "  - {name: bert, version: v2, path: b, image: "
		 "registry.lab:5000/ml/bert-car:7}\n"
		 "  - {name: gpt, version: v3, path: c, image: ml/gpt-car}\n";
	char path[512];
	TU_CHECK(write_spec(path, sizeof(path), text) == 0);
	bld_spec s;
	cm_error err = {0};
	int rc = bld_spec_load(&s, path, &err);
	if (rc < 0)
		printf("#   %s\n", err.msg);
	TU_CHECK(rc == 0 && s.n_models == 3);
	if (rc == 0 && s.n_models == 3) {
		char ref[600];
		TU_CHECK_STR(s.models[0].image_repo, "models.ferry.local/mnist-modelcar");
		TU_CHECK_STR(s.models[0].image_tag, "1.0");
		TU_CHECK(bld_model_image_ref(ref, sizeof(ref), &s.models[0], &err) == 0);
		TU_CHECK_STR(ref, "models.ferry.local/mnist-modelcar:1.0");
		TU_CHECK_STR(s.models[1].image_repo, "registry.lab:5000/ml/bert-car");
		TU_CHECK_STR(s.models[1].image_tag, "7");
		/* no tag: the version; no host: normalised as every runtime reads it */
		TU_CHECK(bld_model_image_ref(ref, sizeof(ref), &s.models[2], &err) == 0);
		TU_CHECK_STR(ref, "docker.io/ml/gpt-car:v3");
		TU_CHECK(bld_model_image_ref(ref, 10, &s.models[0], &err) < 0);
	}
	if (rc == 0)
		bld_spec_free(&s);
	expect_error(
	    HEAD
	    "models:\n  - {name: m, version: \"1\", path: a, image: "
	    "\"x/y@sha256:1111111111111111111111111111111111111111111111111111111111111111\"}\n",
	    6, "names a digest");
	expect_error(HEAD "models:\n  - {name: m, version: \"1\", path: a, image: Bad/Name}\n", 6,
		     "'image' is not an image reference");
	expect_error(HEAD "models:\n  - {name: a, version: \"1\", path: a, image: \"x/y:1\"}\n"
			  "  - {name: b, version: \"1\", path: b, image: \"docker.io/x/y:1\"}\n",
		     7, "same as the one of the model at line 6");
}

int main(void)
{
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	TU_RUN(test_valid_minimal);
	TU_RUN(test_valid_full);
	TU_RUN(test_unknown_key);
	TU_RUN(test_wrong_type);
	TU_RUN(test_missing_fields);
	TU_RUN(test_bad_values);
	TU_RUN(test_realm_credentials);
	TU_RUN(test_referrers);
	TU_RUN(test_yaml_syntax);
	TU_RUN(test_duplicate_keys);
	TU_RUN(test_file_errors);
	TU_RUN(test_model_image);
	cm_rmtree(g_dir);
	TU_EXIT();
}
