/* Image reference parsing and normalisation (registry/reg_ref.c). */
#include "reg_ref.h"

#include "tu.h"

#define HEX1 "cf8d126fc08e596b742025f6e53c97abf921f7bd6394d29c200e79c1c323dc6e"
#define HEX2 "915a3a9b8caea8cceb59258ca2b941c83f0ab230aef5c1dd3b9499574ac3f379"
#define D1 "sha256:" HEX1
#define D2 "sha256:" HEX2

#define KN "gcr.io/knative-releases/knative.dev"

struct good_case {
	const char *in;
	const char *host, *path, *tag, *digest;
	const char *canonical;
};

static const struct good_case good[] = {
    /* docker hub shorthands */
    {"mysql", "docker.io", "library/mysql", "latest", "", "docker.io/library/mysql:latest"},
    {"library/mysql", "docker.io", "library/mysql", "latest", "", "docker.io/library/mysql:latest"},
    {"docker.io/mysql", "docker.io", "library/mysql", "latest", "",
     "docker.io/library/mysql:latest"},
    {"index.docker.io/mysql", "docker.io", "library/mysql", "latest", "",
     "docker.io/library/mysql:latest"},
    {"index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", "",
     "docker.io/library/busybox:latest"},
    {"docker.io/library/mysql:8.0.29", "docker.io", "library/mysql", "8.0.29", "",
     "docker.io/library/mysql:8.0.29"},
    {"busybox:1.28", "docker.io", "library/busybox", "1.28", "", "docker.io/library/busybox:1.28"},
    {"ubuntu@" D1, "docker.io", "library/ubuntu", "", D1, "docker.io/library/ubuntu@" D1},
    {"kserve/kserve-controller:v0.11.0", "docker.io", "kserve/kserve-controller", "v0.11.0", "",
     "docker.io/kserve/kserve-controller:v0.11.0"},
    {"kserve/huggingfaceserver:v0.16.0-gpu", "docker.io", "kserve/huggingfaceserver", "v0.16.0-gpu",
     "", "docker.io/kserve/huggingfaceserver:v0.16.0-gpu"},
    {"pytorch/torchserve-kfs:0.9.0", "docker.io", "pytorch/torchserve-kfs", "0.9.0", "",
     "docker.io/pytorch/torchserve-kfs:0.9.0"},
    {"docker.io/istio/proxyv2:1.17.3", "docker.io", "istio/proxyv2", "1.17.3", "",
     "docker.io/istio/proxyv2:1.17.3"},
    {"docker.io/seldonio/mlserver:1.5.0", "docker.io", "seldonio/mlserver", "1.5.0", "",
     "docker.io/seldonio/mlserver:1.5.0"},
    /* other registries */
    {"gcr.io/ml-pipeline/api-server:2.0.0", "gcr.io", "ml-pipeline/api-server", "2.0.0", "",
     "gcr.io/ml-pipeline/api-server:2.0.0"},
    {"gcr.io/ml-pipeline/minio:RELEASE.2019-08-14T20-37-41Z-license-compliance", "gcr.io",
     "ml-pipeline/minio", "RELEASE.2019-08-14T20-37-41Z-license-compliance", "",
     "gcr.io/ml-pipeline/minio:RELEASE.2019-08-14T20-37-41Z-license-compliance"},
    {"quay.io/jetstack/cert-manager-controller:v1.12.2", "quay.io",
     "jetstack/cert-manager-controller", "v1.12.2", "",
     "quay.io/jetstack/cert-manager-controller:v1.12.2"},
    {"ghcr.io/kubeflow/kfp-driver:2.0.0", "ghcr.io", "kubeflow/kfp-driver", "2.0.0", "",
     "ghcr.io/kubeflow/kfp-driver:2.0.0"},
    {"ghcr.io/kubeflow/kubeflow/pvcviewer-controller", "ghcr.io",
     "kubeflow/kubeflow/pvcviewer-controller", "latest", "",
     "ghcr.io/kubeflow/kubeflow/pvcviewer-controller:latest"},
    {"registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", "",
     "registry.k8s.io/pause:3.9"},
    {"nvcr.io/nvidia/tritonserver:23.05-py3", "nvcr.io", "nvidia/tritonserver", "23.05-py3", "",
     "nvcr.io/nvidia/tritonserver:23.05-py3"},
    {KN "/serving/cmd/activator@" D1, "gcr.io",
     "knative-releases/knative.dev/serving/cmd/activator", "", D1, KN "/serving/cmd/activator@" D1},
    {"quay.io/a/b/c/d", "quay.io", "a/b/c/d", "latest", "", "quay.io/a/b/c/d:latest"},
    /* tag and digest together */
    {"gcr.io/x/y:1.0@" D2, "gcr.io", "x/y", "1.0", D2, "gcr.io/x/y:1.0@" D2},
    {"mysql:8@" D2, "docker.io", "library/mysql", "8", D2, "docker.io/library/mysql:8@" D2},
    /* hosts with ports, localhost, IP addresses */
    {"localhost:5000/a/b:1", "localhost:5000", "a/b", "1", "", "localhost:5000/a/b:1"},
    {"localhost/foo", "localhost", "foo", "latest", "", "localhost/foo:latest"},
    {"127.0.0.1:5000/x@" D1, "127.0.0.1:5000", "x", "", D1, "127.0.0.1:5000/x@" D1},
    {"registry.example.com:443/team/app:v2", "registry.example.com:443", "team/app", "v2", "",
     "registry.example.com:443/team/app:v2"},
    {"[::1]:5000/x:y", "[::1]:5000", "x", "y", "", "[::1]:5000/x:y"},
    {"[fe80::1]/x", "[fe80::1]", "x", "latest", "", "[fe80::1]/x:latest"},
    {"my-registry.local:65535/x", "my-registry.local:65535", "x", "latest", "",
     "my-registry.local:65535/x:latest"},
    /* hosts are kept as written (case is not folded) */
    {"Registry.Example.com/x", "Registry.Example.com", "x", "latest", "",
     "Registry.Example.com/x:latest"},
    /* separators: ".", "_", "__", any run of "-" */
    {"x/a.b_c__d---e/f-g", "docker.io", "x/a.b_c__d---e/f-g", "latest", "",
     "docker.io/x/a.b_c__d---e/f-g:latest"},
    {"x/0/9z", "docker.io", "x/0/9z", "latest", "", "docker.io/x/0/9z:latest"},
    /* tags may start with "_" and carry uppercase */
    {"x:_Under.score-OK", "docker.io", "library/x", "_Under.score-OK", "",
     "docker.io/library/x:_Under.score-OK"},
    /* "latest" spelled out is the same as implied */
    {"mysql:latest", "docker.io", "library/mysql", "latest", "", "docker.io/library/mysql:latest"},
    /* no "/": "localhost:5000" is docker.io/library/localhost, tag 5000
     * (the docker rule: a host needs a "/" after it) */
    {"localhost:5000", "docker.io", "library/localhost", "5000", "",
     "docker.io/library/localhost:5000"},
    {"gcr.io", "docker.io", "library/gcr.io", "latest", "", "docker.io/library/gcr.io:latest"},
};

struct bad_case {
	const char *in;
	int code;
	const char *why; /* a substring of the message */
};

static const struct bad_case bad[] = {
    {"", CM_EINVAL, "empty"},
    {"/mysql", CM_EINVAL, "must not start with \"/\""},
    {"mysql/", CM_EINVAL, "must not end with \"/\""},
    {"gcr.io/", CM_EINVAL, "must not end with \"/\""},
    {"gcr.io/x/:1", CM_EINVAL, "must not end with \"/\""},
    {"a//b", CM_EINVAL, "\"//\""},
    {"gcr.io//x", CM_EINVAL, "\"//\""},
    {"a/../b", CM_EINVAL, "path component \"..\""},
    {"a/b..c", CM_EINVAL, "invalid separator"},
    {"a___b", CM_EINVAL, "invalid separator"},
    {"a._b", CM_EINVAL, "invalid separator"},
    {"-a", CM_EINVAL, "must start with"},
    {"a-", CM_EINVAL, "must end with"},
    {"a/.b", CM_EINVAL, "must start with"},
    {"Foo/Bar", CM_EINVAL, "repository name must be lowercase"},
    {"MySQL", CM_EINVAL, "repository name must be lowercase"},
    {"docker.io/Library/mysql", CM_EINVAL, "repository name must be lowercase"},
    {"gcr.io/ML-Pipeline/api", CM_EINVAL, "repository name must be lowercase"},
    {"a/b$c", CM_EINVAL, "may only contain"},
    {"mysql:", CM_EINVAL, "tag is empty"},
    {"gcr.io/x/y:@" D1, CM_EINVAL, "tag is empty"},
    {"mysql:-bad", CM_EINVAL, "tag \"-bad\" must start with"},
    {"mysql:.x", CM_EINVAL, "must start with"},
    {"mysql:a+b", CM_EINVAL, "tag \"a+b\" may only contain"},
    {"mysql:a:b", CM_EINVAL, "path component \"mysql:a\""},
    {"mysql@", CM_EINVAL, "digest is empty"},
    {"mysql:1@", CM_EINVAL, "digest is empty"},
    {"mysql@" HEX1, CM_EINVAL, "must be \"sha256:"},
    {"mysql@sha512:" HEX1 HEX1, CM_EINVAL, "unsupported digest algorithm \"sha512\""},
    {"mysql@sha256:abc", CM_EINVAL, "has 3 hex digits, want 64"},
    {"mysql@sha256:" HEX1 "0", CM_EINVAL, "has 65 hex digits"},
    {"mysql@sha256:", CM_EINVAL, "has 0 hex digits"},
    {"mysql@sha256:CF8D126FC08E596B742025F6E53C97ABF921F7BD6394D29C200E79C1C323DC6E", CM_EINVAL,
     "lowercase hex"},
    {"mysql@sha256:" HEX1 "@" D1, CM_EINVAL, "hex digits"},
    {":1", CM_EINVAL, "repository name is empty"},
    {"@" D1, CM_EINVAL, "repository name is empty"},
    {":", CM_EINVAL, "tag is empty"},
    {"@", CM_EINVAL, "digest is empty"},
    {"my image", CM_EINVAL, "whitespace"},
    {" mysql", CM_EINVAL, "whitespace"},
    {"mysql ", CM_EINVAL, "whitespace"},
    {"mysql\t", CM_EINVAL, "whitespace"},
    {"my\001sql", CM_EINVAL, "control character"},
    {"caf\xc3\xa9", CM_EINVAL, "non-ASCII"},
    {"my_registry.com/x", CM_EINVAL, "registry host \"my_registry.com\""},
    {"-gcr.io/x", CM_EINVAL, "starts or ends with \"-\""},
    {"gcr-.io/x", CM_EINVAL, "starts or ends with \"-\""},
    {"gcr..io/x", CM_EINVAL, "registry host"},
    {".gcr.io/x", CM_EINVAL, "registry host"},
    {"gcr.io./x", CM_EINVAL, "registry host"},
    {"localhost:/x", CM_EINVAL, "invalid port"},
    {"localhost:abc/x", CM_EINVAL, "invalid port"},
    {"localhost:0/x", CM_EINVAL, "invalid port"},
    {"localhost:65536/x", CM_EINVAL, "invalid port"},
    {"localhost:123456/x", CM_EINVAL, "invalid port"},
    {"localhost:5000:1/x", CM_EINVAL, "invalid port"},
    {"[::1/x", CM_EINVAL, "registry host"},
    {"[zz::1]:5000/x", CM_EINVAL, "IPv6"},
    {"[1]:5000/x", CM_EINVAL, "IPv6"},
    {HEX1, CM_EINVAL, "image ID"},
};

static void test_good_table(void)
{
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct good_case *c = &good[i];
		reg_ref r, r2;
		cm_error err = {0};
		char s[REG_REF_MAX + 64], repo[REG_REF_MAX], want_repo[REG_REF_MAX];
		int rc = reg_ref_parse(&r, c->in, &err);
		int before = tu_case_failed;

		tu_case_failed = 0;
		TU_CHECK_MSG(rc == 0, "input \"%s\": %s", c->in, err.msg);
		if (rc != 0)
			goto next;
		TU_CHECK_STR(r.host, c->host);
		TU_CHECK_STR(r.path, c->path);
		TU_CHECK_STR(r.tag, c->tag);
		TU_CHECK_STR(r.digest, c->digest);
		TU_CHECK(reg_ref_string(s, sizeof(s), &r) == 0);
		TU_CHECK_STR(s, c->canonical);
		snprintf(want_repo, sizeof(want_repo), "%s/%s", c->host, c->path);
		TU_CHECK(reg_ref_repo(repo, sizeof(repo), &r) == 0);
		TU_CHECK_STR(repo, want_repo);
		/* the canonical form parses back to the same thing */
		TU_CHECK(reg_ref_parse(&r2, s, &err) == 0);
		TU_CHECK(memcmp(&r, &r2, sizeof(r)) == 0);
		TU_CHECK(reg_ref_valid_path(r.path));
		if (tu_case_failed)
			printf("#   input \"%s\"\n", c->in);
	next:
		tu_case_failed |= before;
	}
}

static void test_bad_table(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct bad_case *c = &bad[i];
		reg_ref r;
		cm_error err = {0};
		int rc;

		memset(&r, 0x5a, sizeof(r));
		rc = reg_ref_parse(&r, c->in, &err);
		TU_CHECK_MSG(!(rc != c->code || err.code != c->code || !strstr(err.msg, c->why) ||
			       strncmp(err.msg, "invalid reference \"", 19) != 0),
			     "input \"%s\": rc %d, message \"%s\" (want %d, \"%s\")", c->in, rc,
			     err.msg, c->code, c->why);
		/* a failed parse leaves nothing half-filled */
		TU_CHECK(r.host[0] == '\0' && r.path[0] == '\0' && r.tag[0] == '\0' &&
			 r.digest[0] == '\0');
	}
}

static void test_message_quotes_input(void)
{
	cm_error err = {0};
	reg_ref r;

	TU_CHECK(reg_ref_parse(&r, "Foo/Bar", &err) == CM_EINVAL);
	TU_CHECK_STR(err.msg, "invalid reference \"Foo/Bar\": repository name must be lowercase");
	TU_CHECK(reg_ref_parse(&r, "gcr.io/x/y:1.0@sha256:abc", &err) == CM_EINVAL);
	TU_CHECK_STR(err.msg, "invalid reference \"gcr.io/x/y:1.0@sha256:abc\": "
			      "sha256 digest has 3 hex digits, want 64");
	/* control bytes and quotes are escaped, not printed raw */
	TU_CHECK(reg_ref_parse(&r, "a\nb\"c", &err) == CM_EINVAL);
	TU_CHECK(strstr(err.msg, "\"a\\x0ab\\\"c\"") != NULL);
	TU_CHECK(strchr(err.msg, '\n') == NULL);
}

static void test_null_arguments(void)
{
	cm_error err = {0};
	reg_ref r;

	TU_CHECK(reg_ref_parse(&r, NULL, &err) == CM_EINVAL);
	TU_CHECK(err.code == CM_EINVAL && err.msg[0] != '\0');
	TU_CHECK(reg_ref_parse(NULL, "mysql", &err) == CM_EINVAL);
	/* err may be NULL */
	TU_CHECK(reg_ref_parse(&r, "Bad", NULL) == CM_EINVAL);
	TU_CHECK(reg_ref_parse(&r, "mysql", NULL) == 0);
	TU_CHECK(reg_ref_valid_path(NULL) == 0);
	TU_CHECK(reg_ref_valid_tag(NULL) == 0);
}

static void test_input_length_cap(void)
{
	char big[REG_REF_MAX * 2];
	cm_error err = {0};
	reg_ref r;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	TU_CHECK(reg_ref_parse(&r, big, &err) == CM_EINVAL);
	TU_CHECK(strstr(err.msg, "longer than 512 bytes") != NULL);
	/* the message quotes only a prefix */
	TU_CHECK(strstr(err.msg, "...\"") != NULL);
	TU_CHECK(strlen(err.msg) < 400);
	big[REG_REF_MAX + 1] = '\0';
	TU_CHECK(reg_ref_parse(&r, big, &err) == CM_EINVAL);
	TU_CHECK(strstr(err.msg, "longer than 512 bytes") != NULL);
	/* exactly REG_REF_MAX bytes passes the cap; the name rule refuses it */
	big[REG_REF_MAX] = '\0';
	TU_CHECK(reg_ref_parse(&r, big, &err) == CM_EINVAL);
	TU_CHECK(strstr(err.msg, "longer than 512") == NULL);
	TU_CHECK(strstr(err.msg, "longer than 255 characters") != NULL);
}

static void test_name_length_limit(void)
{
	char name[300], s1[REG_REF_MAX + 1];
	cm_error err = {0};
	reg_ref r, r2;

	/* The 255 limit is on the normalised name, host included, as in
	 * distribution's ParseNormalizedNamed. "x/" + 243 normalises to
	 * "docker.io/x/" + 243 = 255 characters: the longest docker.io name. */
	memcpy(name, "x/", 2);
	memset(name + 2, 'a', 243);
	name[245] = '\0';
	TU_CHECK(reg_ref_parse(&r, name, &err) == 0);
	TU_CHECK(strlen(r.host) + 1 + strlen(r.path) == 255);
	TU_CHECK(reg_ref_string(s1, sizeof(s1), &r) == 0);
	TU_CHECK(reg_ref_parse(&r2, s1, &err) == 0);
	TU_CHECK(memcmp(&r, &r2, sizeof(r)) == 0);
	name[245] = 'a';
	name[246] = '\0';
	TU_CHECK(reg_ref_parse(&r, name, &err) == CM_EINVAL);
	TU_CHECK(strstr(err.msg, "longer than 255") != NULL);

	/* found by fuzz_ref: a 255-character name without a host parsed, but
	 * its own canonical string ("docker.io/" + name) did not */
	memcpy(name, "x/", 2);
	memset(name + 2, 'a', 253);
	name[255] = '\0';
	TU_CHECK(reg_ref_parse(&r, name, &err) == CM_EINVAL);
	TU_CHECK(strstr(err.msg, "once normalised") != NULL);

	/* with a host, the limit covers host and path as written */
	memcpy(name, "gcr.io/", 7);
	memset(name + 7, 'b', 248);
	name[255] = '\0';
	TU_CHECK(reg_ref_parse(&r, name, &err) == 0);
	TU_CHECK(reg_ref_string(s1, sizeof(s1), &r) == 0);
	TU_CHECK(reg_ref_parse(&r2, s1, &err) == 0);
	name[255] = 'b';
	name[256] = '\0';
	TU_CHECK(reg_ref_parse(&r, name, &err) == CM_EINVAL);

	/* a one-component docker.io name must leave room for "library/" (and
	 * "docker.io/"): 237 + 8 + 10 = 255 */
	memset(name, 'c', 250);
	name[250] = '\0';
	TU_CHECK(reg_ref_parse(&r, name, &err) == CM_EINVAL);
	TU_CHECK(strstr(err.msg, "library/") != NULL);
	name[238] = '\0';
	TU_CHECK(reg_ref_parse(&r, name, &err) == CM_EINVAL);
	name[237] = '\0';
	TU_CHECK(reg_ref_parse(&r, name, &err) == 0);
	TU_CHECK(strlen(r.path) == 245);
	TU_CHECK(reg_ref_string(s1, sizeof(s1), &r) == 0);
	TU_CHECK(reg_ref_parse(&r2, s1, &err) == 0);
	TU_CHECK(memcmp(&r, &r2, sizeof(r)) == 0);
}

static void test_tag_length_limit(void)
{
	char in[256], tag[200];
	cm_error err = {0};
	reg_ref r;

	memset(tag, 'T', 128);
	tag[128] = '\0';
	TU_CHECK(reg_ref_valid_tag(tag));
	snprintf(in, sizeof(in), "x:%s", tag);
	TU_CHECK(reg_ref_parse(&r, in, &err) == 0);
	TU_CHECK_STR(r.tag, tag);
	tag[128] = 'T';
	tag[129] = '\0';
	TU_CHECK(!reg_ref_valid_tag(tag));
	snprintf(in, sizeof(in), "x:%s", tag);
	TU_CHECK(reg_ref_parse(&r, in, &err) == CM_EINVAL);
	TU_CHECK(strstr(err.msg, "longer than 128") != NULL);
}

static void test_output_buffer_too_small(void)
{
	cm_error err = {0};
	reg_ref r;
	char out[64];
	const char *want = "registry.k8s.io/pause:3.9";
	size_t n = strlen(want);

	TU_CHECK(reg_ref_parse(&r, want, &err) == 0);
	TU_CHECK(reg_ref_string(out, n + 1, &r) == 0);
	TU_CHECK_STR(out, want);
	TU_CHECK(reg_ref_string(out, n, &r) == CM_EINVAL);
	TU_CHECK_STR(out, "");
	TU_CHECK(reg_ref_string(out, 0, &r) == CM_EINVAL);
	TU_CHECK(reg_ref_repo(out, strlen("registry.k8s.io/pause") + 1, &r) == 0);
	TU_CHECK_STR(out, "registry.k8s.io/pause");
	TU_CHECK(reg_ref_repo(out, strlen("registry.k8s.io/pause"), &r) == CM_EINVAL);
	TU_CHECK_STR(out, "");
	TU_CHECK(reg_ref_repo(out, 1, &r) == CM_EINVAL);
	TU_CHECK(reg_ref_repo(out, sizeof(out), NULL) == CM_EINVAL);
	TU_CHECK(reg_ref_string(NULL, sizeof(out), &r) == CM_EINVAL);
}

static void test_longest_valid_fits(void)
{
	/* 255-character name + 128-character tag + digest: well under the cap,
	 * and the canonical string round-trips */
	char in[REG_REF_MAX + 1], out[REG_REF_MAX + 1];
	cm_error err = {0};
	reg_ref r;
	size_t o = 0;

	memcpy(in, "gcr.io/", 7);
	o = 7;
	memset(in + o, 'p', 248);
	o += 248;
	in[o++] = ':';
	memset(in + o, 't', 128);
	o += 128;
	snprintf(in + o, sizeof(in) - o, "@%s", D1);
	TU_CHECK(strlen(in) <= REG_REF_MAX);
	TU_CHECK(reg_ref_parse(&r, in, &err) == 0);
	TU_CHECK(reg_ref_string(out, sizeof(out), &r) == 0);
	TU_CHECK_STR(out, in);
}

static void test_valid_path(void)
{
	static const char *ok[] = {
	    "a", "library/mysql",	   "a/b/c/d",	   "a.b", "a_b", "a__b", "a-b", "a---b",
	    "0", "ml-pipeline/api-server", "knative.dev/x"};
	static const char *no[] = {"",	 "/a", "a/", "a//b", "A",  "a/B", "a..b", "a___b", "_a",
				   "a_", "-a", "a-", "a.-b", "..", "a b", "a:b",  "a@b"};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		TU_CHECK_MSG(reg_ref_valid_path(ok[i]), "path \"%s\" should be valid", ok[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		TU_CHECK_MSG(!reg_ref_valid_path(no[i]), "path \"%s\" should be invalid", no[i]);
	}
}

static void test_valid_tag(void)
{
	static const char *ok[] = {"latest",	"1",
				   "_x",	"V1.2.3-rc.1_b",
				   "23.05-py3", "RELEASE.2019-08-14T20-37-41Z-license-compliance"};
	static const char *no[] = {"", "-x", ".x", "a+b", "a:b", "a/b", "a b", "a@b"};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		TU_CHECK_MSG(reg_ref_valid_tag(ok[i]), "tag \"%s\" should be valid", ok[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		TU_CHECK_MSG(!reg_ref_valid_tag(no[i]), "tag \"%s\" should be invalid", no[i]);
	}
}

int main(void)
{
	TU_RUN(test_good_table);
	TU_RUN(test_bad_table);
	TU_RUN(test_message_quotes_input);
	TU_RUN(test_null_arguments);
	TU_RUN(test_input_length_cap);
	TU_RUN(test_name_length_limit);
	TU_RUN(test_tag_length_limit);
	TU_RUN(test_output_buffer_too_small);
	TU_RUN(test_longest_valid_fits);
	TU_RUN(test_valid_path);
	TU_RUN(test_valid_tag);
	TU_EXIT();
}
