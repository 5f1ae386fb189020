/* Unit tests for the registry client's parsers and credential lookup
 * (the network paths are covered by tests/e2e/pull_*.sh). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_file.h"
#include "reg_client.h"
#include "reg_store.h"
#include "reg_url.h"
#include "tu.h"

static void test_challenge_bearer(void)
{
	char s[32], r[256], sv[128], sc[256];
	TU_CHECK(reg_auth_parse_challenge(
		     "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
		     "scope=\"repository:library/mysql:pull\"",
		     s, sizeof(s), r, sizeof(r), sv, sizeof(sv), sc, sizeof(sc)) == 0);
	TU_CHECK_STR(s, "Bearer");
	TU_CHECK_STR(r, "https://auth.docker.io/token");
	TU_CHECK_STR(sv, "registry.docker.io");
	TU_CHECK_STR(sc, "repository:library/mysql:pull");
}

static void test_challenge_basic_and_odd(void)
{
	char s[32], r[256], sv[128], sc[256];
	TU_CHECK(reg_auth_parse_challenge("Basic realm=\"Registry Realm\"", s, sizeof(s), r,
					  sizeof(r), sv, sizeof(sv), sc, sizeof(sc)) == 0);
	TU_CHECK_STR(s, "Basic");
	TU_CHECK_STR(r, "Registry Realm");
	TU_CHECK_STR(sv, "");
	/* unquoted values, spaces, escaped quotes, unknown params */
	TU_CHECK(reg_auth_parse_challenge(
		     "Bearer  realm=http://x/t , foo=\"a,b\", service=\"s\\\"q\"", s, sizeof(s), r,
		     sizeof(r), sv, sizeof(sv), sc, sizeof(sc)) == 0);
	TU_CHECK_STR(r, "http://x/t");
	TU_CHECK_STR(sv, "s\"q");
	TU_CHECK(reg_auth_parse_challenge("", s, sizeof(s), r, sizeof(r), sv, sizeof(sv), sc,
					  sizeof(sc)) < 0);
	/* truncation stays bounded */
	char tiny[4];
	TU_CHECK(reg_auth_parse_challenge("Bearer realm=\"abcdefgh\"", s, sizeof(s), tiny,
					  sizeof(tiny), sv, sizeof(sv), sc, sizeof(sc)) == 0);
	TU_CHECK_STR(tiny, "abc");
}

static void test_retry_after(void)
{
	TU_CHECK(reg_parse_retry_after("1", 0) == 1);
	TU_CHECK(reg_parse_retry_after(" 30 ", 0) == 30);
	TU_CHECK(reg_parse_retry_after("-5", 0) == 0);
	TU_CHECK(reg_parse_retry_after("soon", 0) < 0);
	TU_CHECK(reg_parse_retry_after("", 0) < 0);
	/* 784111777 = Sun, 06 Nov 1994 08:49:37 GMT */
	TU_CHECK(reg_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 10) == 10);
	TU_CHECK(reg_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 10) == 0);
}

static void test_ratelimit(void)
{
	TU_CHECK(reg_parse_ratelimit("20;w=21600") == 20);
	TU_CHECK(reg_parse_ratelimit(" 100;w=21600") == 100);
	TU_CHECK(reg_parse_ratelimit("x") == -1);
	TU_CHECK(reg_parse_ratelimit("-1") == -1);
}

static void test_key_match(void)
{
	TU_CHECK(reg_auth_key_matches("https://index.docker.io/v1/", "registry-1.docker.io"));
	TU_CHECK(reg_auth_key_matches("docker.io", "registry-1.docker.io"));
	TU_CHECK(!reg_auth_key_matches("quay.io", "registry-1.docker.io"));
	TU_CHECK(reg_auth_key_matches("http://127.0.0.1:5000", "127.0.0.1:5000"));
	TU_CHECK(reg_auth_key_matches("127.0.0.1:5000/", "127.0.0.1:5000"));
	TU_CHECK(!reg_auth_key_matches("127.0.0.1:5001", "127.0.0.1:5000"));
	TU_CHECK(!reg_auth_key_matches("127.0.0.1", "127.0.0.1:5000"));
}

static char dir[256];

static void write_file(const char *name, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_lookup_files(void)
{
	char u[256], s[256], src[512], p[512];
	cm_error err;
	/* alice:pw in base64 is YWxpY2U6cHc= */
	write_file("config.json",
		   "{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"YWxpY2U6cHc=\"},"
		   "\"r.example:5000\":{\"username\":\"bob\",\"password\":\"x:y\"}}}");
	setenv("DOCKER_CONFIG", dir, 1);
	unsetenv("REGISTRY_AUTH_FILE");
	setenv("HOME", dir, 1);
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src),
				 "registry-1.docker.io", &err) == 1);
	TU_CHECK_STR(u, "alice");
	TU_CHECK_STR(s, "pw");
	TU_CHECK(strstr(src, "config.json") != NULL);
	TU_CHECK(strstr(src, "pw") == NULL);
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "r.example:5000",
				 &err) == 1);
	TU_CHECK_STR(u, "bob");
	TU_CHECK_STR(s, "x:y");
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "quay.io", &err) ==
		 0);
	/* REGISTRY_AUTH_FILE comes first */
	write_file("auth.json", "{\"auths\":{\"quay.io\":{\"auth\":\"cTpx\"}}}");
	snprintf(p, sizeof(p), "%s/auth.json", dir);
	setenv("REGISTRY_AUTH_FILE", p, 1);
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "quay.io", &err) ==
		 1);
	TU_CHECK_STR(u, "q");
	TU_CHECK_STR(s, "q");
	unsetenv("REGISTRY_AUTH_FILE");
	/* an identity token wins over the entry's auth */
	write_file("config.json", "{\"auths\":{\"acr.example\":{\"auth\":\"YWxpY2U6cHc=\","
				  "\"identitytoken\":\"eyJ.refresh\"}}}");
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "acr.example",
				 &err) == 1);
	TU_CHECK_STR(u, REG_AUTH_IDENTITY);
	TU_CHECK(reg_auth_is_identity(u));
	TU_CHECK(!reg_auth_is_identity("alice"));
	TU_CHECK_STR(s, "eyJ.refresh");
	TU_CHECK(strstr(src, "refresh") == NULL);
	/* bad base64 or JSON */
	write_file("config.json", "{\"auths\":{\"x.io\":{\"auth\":\"!!!!\"}}}");
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "x.io", &err) == 0);
	write_file("config.json", "{not json");
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "x.io", &err) ==
		 CM_EINVAL);
}

/* The refresh-token grant's form: every value escaped, scopes joined by
 * a space (sent as %20). */
static void test_refresh_form(void)
{
	char *f = NULL;
	cm_error err;
	TU_CHECK(reg_auth_refresh_form(&f, "registry.example",
				       "repository:a/b:pull repository:c:push", "t0k+en/=&x",
				       &err) == 0);
	if (f)
		TU_CHECK_STR(f, "grant_type=refresh_token&service=registry.example"
				"&scope=repository%3Aa%2Fb%3Apull%20repository%3Ac%3Apush"
				"&client_id=ferry&refresh_token=t0k%2Ben%2F%3D%26x");
	free(f);
	TU_CHECK(reg_auth_refresh_form(&f, "", "", "r", &err) == 0);
	if (f)
		TU_CHECK_STR(f, "grant_type=refresh_token&client_id=ferry&refresh_token=r");
	free(f);
}

/* A token request: one scope= per scope, service only when known, '&'
 * after a realm that has a query already; an identity token POSTs the
 * grant to the realm. The answer: token, else access_token; expires_in
 * at least 60. */
static void test_token_req(void)
{
	reg_token_req r;
	cm_error err;
	TU_CHECK(reg_auth_token_req(&r, "https://auth.example/token", "reg",
				    "repository:a/b:pull "
				    "repository:c:pull,push",
				    0, NULL, &err) == 0);
	TU_CHECK(r.form == NULL);
	if (r.url)
		TU_CHECK_STR(r.url,
			     "https://auth.example/token?service=reg&scope=repository%3Aa%2Fb"
			     "%3Apull&scope=repository%3Ac%3Apull%2Cpush");
	reg_auth_token_req_free(&r);
	TU_CHECK(reg_auth_token_req(&r, "https://a.example/t?x=1", "", "repository:a:pull", 0, NULL,
				    &err) == 0);
	if (r.url)
		TU_CHECK_STR(r.url, "https://a.example/t?x=1&scope=repository%3Aa%3Apull");
	reg_auth_token_req_free(&r);
	TU_CHECK(reg_auth_token_req(&r, "https://a.example/t", "reg", "repository:a:pull", 1, "sec",
				    &err) == 0);
	if (r.url && r.form) {
		TU_CHECK_STR(r.url, "https://a.example/t");
		TU_CHECK(strstr(r.form, "refresh_token=sec") != NULL);
	}
	reg_auth_token_req_free(&r);
	TU_CHECK(r.url == NULL && r.form == NULL);

	char *t = NULL;
	double exp = 0;
	const char *a = "{\"token\":\"T1\",\"expires_in\":300}";
	TU_CHECK(reg_auth_token_parse(&t, &exp, a, strlen(a), &err) == 0 && t && exp == 300);
	if (t)
		TU_CHECK_STR(t, "T1");
	free(t);
	a = "{\"access_token\":\"T2\",\"expires_in\":5}";
	TU_CHECK(reg_auth_token_parse(&t, &exp, a, strlen(a), &err) == 0 && t && exp == 60);
	if (t)
		TU_CHECK_STR(t, "T2");
	free(t);
	a = "{\"token\":\"\"}";
	TU_CHECK(reg_auth_token_parse(&t, &exp, a, strlen(a), &err) == CM_EFAIL && t == NULL);
	TU_CHECK(reg_auth_token_parse(&t, &exp, "nonsense", 8, &err) == CM_EFAIL && t == NULL);
}

static void test_helper(void)
{
	char u[256], s[256], src[512], path[1024];
	cm_error err;
	write_file("docker-credential-tu",
		   "#!/bin/sh\nread -r s\n[ \"$s\" = https://index.docker.io/v1/ ] || "
		   "{ echo 'credentials not found in native keychain'; exit 1; }\n"
		   "echo '{\"Username\":\"hub\",\"Secret\":\"tok\"}'\n");
	write_file("docker-credential-bad", "#!/bin/sh\necho nonsense\n");
	char p[512];
	snprintf(p, sizeof(p), "%s/docker-credential-tu", dir);
	chmod(p, 0755);
	snprintf(p, sizeof(p), "%s/docker-credential-bad", dir);
	chmod(p, 0755);
	snprintf(path, sizeof(path), "%s:%s", dir,
		 getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	setenv("PATH", path, 1);
	write_file("config.json", "{\"credsStore\":\"tu\",\"credHelpers\":{\"b.io\":\"bad\","
				  "\"c.io\":\"missing-helper\",\"d.io\":\"../evil\"}}");
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "docker.io", &err) ==
		 1);
	TU_CHECK_STR(u, "hub");
	TU_CHECK_STR(s, "tok");
	TU_CHECK(strstr(src, "docker-credential-tu") != NULL);
	/* not found in the store: anonymous */
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "e.io", &err) == 0);
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "b.io", &err) ==
		 CM_EINVAL);
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "c.io", &err) < 0);
	TU_CHECK(strstr(err.msg, "docker-credential-missing-helper") != NULL);
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "d.io", &err) ==
		 CM_EINVAL);
}

static void test_helper_output(void)
{
	char u[256], s[64];
	cm_error err = {0};
	const char *a = "{\"ServerURL\":\"https://index.docker.io/v1/\",\"Username\":\"alice\","
			"\"Secret\":\"s3cret\"}\n";
	TU_CHECK(reg_auth_parse_helper_output(u, sizeof(u), s, sizeof(s), a, strlen(a), &err) == 1);
	TU_CHECK_STR(u, "alice");
	TU_CHECK_STR(s, "s3cret");
	/* escapes are decoded; an identity token comes back as such */
	a = "{\"Username\":\"<token>\",\"Secret\":\"p\\\"w\\\\d\\u00e9\"}";
	TU_CHECK(reg_auth_parse_helper_output(u, sizeof(u), s, sizeof(s), a, strlen(a), &err) == 1);
	TU_CHECK(reg_auth_is_identity(u));
	TU_CHECK_STR(s, "p\"w\\d\xc3\xa9");
	/* refused: each with an empty user and secret, and a message that
	 * never quotes the input */
	const char *bad[] = {
	    "",
	    "credentials not found in native keychain",
	    "[\"alice\",\"hunter2\"]",
	    "{\"Username\":\"alice\"}",
	    "{\"Username\":\"alice\",\"Secret\":7}",
	    "{\"Username\":null,\"Secret\":\"hunter2\"}",
	    "{\"Username\":\"alice\",\"Secret\":\"hunt\\u0000er2\"}",
	    "{\"Username\":\"alice\",\"Secret\":\"hunter2\",\"Secret\":\"hunter3\"}",
	    "{\"Username\":\"alice\",\"Secret\":\"hunter2",
	    "{\"Username\":\"alice\",\"Secret\":\"hunter2\"} trailing",
	    /* 64 bytes: one too many for s */
	    "{\"Username\":\"alice\",\"Secret\":"
	    "\"hunter2hunter2hunter2hunter2hunter2hunter2hunter2hunter2hunter2h\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = reg_auth_parse_helper_output(u, sizeof(u), s, sizeof(s), bad[i],
						      strlen(bad[i]), &err);
		TU_CHECK(rc == CM_EINVAL);
		TU_CHECK(u[0] == '\0' && s[0] == '\0');
		TU_CHECK(err.msg[0] && !strstr(err.msg, "hunter") && !strstr(err.msg, "alice"));
		if (rc != CM_EINVAL || strstr(err.msg, "hunter"))
			printf("#   case %zu: rc %d msg '%s'\n", i, rc, err.msg);
	}
	/* a NUL byte in the raw answer (outside a string) is no JSON */
	TU_CHECK(reg_auth_parse_helper_output(u, sizeof(u), s, sizeof(s), "{\"a\":1}\0x", 9,
					      &err) == CM_EINVAL);
}

static void test_realm_check(void)
{
	int ok = -1;
	char h[300];
	cm_error err = {0};
	const char *const allow[] = {"auth.example.com", "127.0.0.3:5001"};
	/* the registry's own host, any port and path: credentials go */
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "http://127.0.0.1:5000",
				      "http://127.0.0.1:5001/token", NULL, 0, &err) == 0 &&
		 ok == 1);
	TU_CHECK_STR(h, "127.0.0.1");
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "https://Registry.Example.com",
				      "https://registry.example.COM/v2/auth", NULL, 0, &err) == 0 &&
		 ok == 1);
	/* another host: anonymous unless allowed (by host, or host:port) */
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "http://127.0.0.1:5000",
				      "http://127.0.0.2:5001/token", NULL, 0, &err) == 0 &&
		 ok == 0);
	TU_CHECK_STR(h, "127.0.0.2");
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "https://registry.example.com",
				      "https://auth.example.com/token", allow, 2, &err) == 0 &&
		 ok == 1);
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "https://registry.example.com",
				      "https://evil.example.com/token", allow, 2, &err) == 0 &&
		 ok == 0);
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "http://127.0.0.1:5000",
				      "http://127.0.0.3:5001/token", allow, 2, &err) == 0 &&
		 ok == 1);
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "http://127.0.0.1:5000",
				      "http://127.0.0.3:5002/token", allow, 2, &err) == 0 &&
		 ok == 0);
	/* a look-alike of an allowed host is not it */
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "https://registry.example.com",
				      "https://auth.example.com.evil.io/token", allow, 2,
				      &err) == 0 &&
		 ok == 0);
	/* Docker Hub's realm is built in, for Docker Hub only */
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "https://registry-1.docker.io",
				      "https://auth.docker.io/token", NULL, 0, &err) == 0 &&
		 ok == 1);
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "https://registry.example.com",
				      "https://auth.docker.io/token", NULL, 0, &err) == 0 &&
		 ok == 0);
	/* a plain-HTTP realm for an HTTPS registry: refused, naming both */
	ok = -1;
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "https://127.0.0.1:5000",
				      "http://127.0.0.1:5001/token", NULL, 0, &err) == CM_EINVAL);
	TU_CHECK(ok == 0);
	TU_CHECK(strstr(err.msg, "https://127.0.0.1:5000") &&
		 strstr(err.msg, "http://127.0.0.1:5001/token") && strstr(err.msg, "plain-HTTP"));
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "https://registry-1.docker.io",
				      "HTTP://auth.docker.io/token", NULL, 0, &err) == CM_EINVAL);
	/* HTTPS realm for a plain-HTTP registry is fine */
	TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "http://127.0.0.1:5000",
				      "https://127.0.0.1/token", NULL, 0, &err) == 0 &&
		 ok == 1);
	/* not an http(s) URL with a host */
	const char *bad[] = {
	    "file:///etc/passwd",    "ftp://127.0.0.1/t", "/token", "", "Registry Realm", "http://",
	    "gopher://127.0.0.1:70/"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ok = -1;
		TU_CHECK(reg_auth_realm_check(&ok, h, sizeof(h), "http://127.0.0.1:5000", bad[i],
					      NULL, 0, &err) == CM_EINVAL &&
			 ok == 0);
	}
}

static void test_secret_buf(void)
{
	cm_buf b = CM_BUF_INIT;
	cm_error err = {0};
	char chunk[700];
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (char)('a' + i % 26);
	/* grows past its first block several times, keeping every byte */
	for (int i = 0; i < 20; i++)
		TU_CHECK(reg_secret_append(&b, chunk, sizeof(chunk), &err) == 0);
	TU_CHECK(b.len == 20 * sizeof(chunk) && b.cap > b.len && b.data[b.len] == '\0');
	int same = 1;
	for (size_t i = 0; i < b.len; i++)
		same &= b.data[i] == chunk[i % sizeof(chunk)];
	TU_CHECK(same);
	reg_secret_free(&b);
	TU_CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
	reg_secret_free(NULL);
	/* the limit holds */
	b.limit = 1000;
	TU_CHECK(reg_secret_append(&b, chunk, sizeof(chunk), &err) == 0);
	TU_CHECK(reg_secret_append(&b, chunk, sizeof(chunk), &err) == CM_EINVAL);
	TU_CHECK(b.len == sizeof(chunk));
	reg_secret_free(&b);
}

/* A config file that is not JSON: the error names the file and where,
 * never the text (which may be a secret). */
static void test_lookup_bad_json(void)
{
	char u[256], s[256], src[512];
	cm_error err = {0};
	write_file("config.json", "{\"auths\":{\"x.io\":{\"auth\":\"c2VjcmV0\" hunter2 }}}");
	TU_CHECK(reg_auth_lookup(u, sizeof(u), s, sizeof(s), src, sizeof(src), "x.io", &err) ==
		 CM_EINVAL);
	TU_CHECK(strstr(err.msg, "config.json") && strstr(err.msg, "line 1"));
	TU_CHECK(!strstr(err.msg, "hunter2") && !strstr(err.msg, "c2VjcmV0"));
}

static void test_resumable_writer(void)
{
	char root[300];
	snprintf(root, sizeof(root), "%s/store", dir);
	reg_store *st = NULL;
	cm_error err;
	TU_CHECK(reg_store_open(&st, root, &err) == 0);
	if (!st)
		return;
	const char *data = "hello, resumable world";
	reg_digest d;
	reg_digest_buf(&d, data, strlen(data), &err);
	reg_blob_writer *w;
	TU_CHECK(reg_blob_writer_resume(&w, st, &d, NULL, &err) == 0);
	TU_CHECK(reg_blob_writer_size(w) == 0);
	reg_blob_writer_write(w, data, 7, &err);
	reg_blob_writer_keep(w); /* cut: the bytes stay in tmp/<hex>.partial */
	TU_CHECK(reg_blob_writer_resume(&w, st, &d, NULL, &err) == 0);
	TU_CHECK(reg_blob_writer_size(w) == 7);
	/* a second writer of the same blob while locked gets a private file */
	reg_blob_writer *w2;
	TU_CHECK(reg_blob_writer_resume(&w2, st, &d, NULL, &err) == 0);
	TU_CHECK(reg_blob_writer_size(w2) == 0);
	reg_blob_writer_abort(w2);
	reg_blob_writer_write(w, data + 7, strlen(data) - 7, &err);
	TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &err) == 0);
	TU_CHECK(reg_store_has(st, &d, NULL));
	/* a partial with wrong bytes fails the digest check and is removed */
	reg_digest d2;
	reg_digest_buf(&d2, "other", 5, &err);
	TU_CHECK(reg_blob_writer_resume(&w, st, &d2, NULL, &err) == 0);
	reg_blob_writer_write(w, "OTHER", 5, &err);
	TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &err) == CM_EVERIFY);
	char p[512];
	snprintf(p, sizeof(p), "%s/tmp/%s.partial", root, REG_DIGEST_HEX(&d2));
	TU_CHECK(access(p, F_OK) != 0);
	/* reset throws bytes away */
	TU_CHECK(reg_blob_writer_resume(&w, st, &d2, NULL, &err) == 0);
	reg_blob_writer_write(w, "xx", 2, &err);
	TU_CHECK(reg_blob_writer_reset(w, &err) == 0);
	TU_CHECK(reg_blob_writer_size(w) == 0);
	reg_blob_writer_write(w, "other", 5, &err);
	TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &err) == 0);
	reg_store_free(st);
}

static void test_route(void)
{
	reg_endpoint eps[2];
	memset(eps, 0, sizeof(eps));
	snprintf(eps[0].prefix, sizeof(eps[0].prefix), "docker.io");
	snprintf(eps[0].endpoint, sizeof(eps[0].endpoint), "127.0.0.1:5000");
	eps[0].insecure = 1;
	snprintf(eps[1].prefix, sizeof(eps[1].prefix), "gcr.io/ml-pipeline");
	snprintf(eps[1].endpoint, sizeof(eps[1].endpoint), "https://mirror.lan/gcr");
	reg_client_opts o;
	memset(&o, 0, sizeof(o));
	o.endpoints = eps;
	o.n_endpoints = 2;
	reg_client *c = NULL;
	cm_error err;
	TU_CHECK(reg_client_new(&c, &o, &err) == 0);
	if (!c)
		return;
	reg_ref r;
	char base[600], repo[512];
	reg_ref_parse(&r, "mysql:8.0.29", &err);
	TU_CHECK(reg_client_route(base, sizeof(base), repo, sizeof(repo), c, &r, &err) == 0);
	TU_CHECK_STR(base, "http://127.0.0.1:5000");
	TU_CHECK_STR(repo, "library/mysql");
	reg_ref_parse(&r, "gcr.io/ml-pipeline/api-server:2.0.0", &err);
	reg_client_route(base, sizeof(base), repo, sizeof(repo), c, &r, &err);
	TU_CHECK_STR(base, "https://mirror.lan");
	TU_CHECK_STR(repo, "gcr/api-server");
	/* a prefix matches whole components only */
	reg_ref_parse(&r, "gcr.io/ml-pipeline-x/a:1", &err);
	reg_client_route(base, sizeof(base), repo, sizeof(repo), c, &r, &err);
	TU_CHECK_STR(base, "https://gcr.io");
	TU_CHECK_STR(repo, "ml-pipeline-x/a");
	reg_client_free(c);
	/* without a mapping docker.io is registry-1.docker.io */
	memset(&o, 0, sizeof(o));
	TU_CHECK(reg_client_new(&c, &o, &err) == 0);
	reg_ref_parse(&r, "busybox", &err);
	reg_client_route(base, sizeof(base), repo, sizeof(repo), c, &r, &err);
	TU_CHECK_STR(base, "https://registry-1.docker.io");
	TU_CHECK_STR(repo, "library/busybox");
	reg_client_free(c);
}

/* The one header parser: status lines start a response; names are
 * lowercased, values trimmed and cut to the buffer; junk is no header. */
static void test_header_parse(void)
{
	char n[32], v[16];
	TU_CHECK(reg_header_parse(n, sizeof(n), v, sizeof(v), "HTTP/1.1 307 Temporary\r\n", 24) ==
		 1);
	TU_CHECK(reg_header_parse(n, sizeof(n), v, sizeof(v), "HTTP/2 200\r\n", 12) == 1);
	const char *h = "Docker-Content-Digest:  sha256:ab \t\r\n";
	TU_CHECK(reg_header_parse(n, sizeof(n), v, sizeof(v), h, strlen(h)) == 0);
	TU_CHECK_STR(n, "docker-content-digest");
	TU_CHECK_STR(v, "sha256:ab");
	/* a value longer than the buffer is cut, never overrun */
	h = "Location: http://example.com/a/very/long/path\r\n";
	TU_CHECK(reg_header_parse(n, sizeof(n), v, sizeof(v), h, strlen(h)) == 0);
	TU_CHECK_STR(n, "location");
	TU_CHECK(strlen(v) == sizeof(v) - 1 && strncmp(v, "http://example.c", 15) == 0);
	/* an empty value */
	TU_CHECK(reg_header_parse(n, sizeof(n), v, sizeof(v), "X-Empty:\r\n", 10) == 0);
	TU_CHECK_STR(n, "x-empty");
	TU_CHECK_STR(v, "");
	/* no colon, a name with a space, a name too long, the blank end line */
	TU_CHECK(reg_header_parse(n, sizeof(n), v, sizeof(v), "garbage\r\n", 9) == 0);
	TU_CHECK_STR(n, "");
	TU_CHECK(reg_header_parse(n, sizeof(n), v, sizeof(v), "Bad Name: x\r\n", 13) == 0);
	TU_CHECK_STR(n, "");
	h = "A-Header-Name-Longer-Than-Thirty-Two: x\r\n";
	TU_CHECK(reg_header_parse(n, sizeof(n), v, sizeof(v), h, strlen(h)) == 0);
	TU_CHECK_STR(n, "");
	TU_CHECK(reg_header_parse(n, sizeof(n), v, sizeof(v), "\r\n", 2) == 0);
	TU_CHECK_STR(n, "");
	/* the length given is the line: no NUL needed, nothing read past it */
	TU_CHECK(reg_header_parse(n, sizeof(n), v, sizeof(v), "Retry-After: 12345", 14) == 0);
	TU_CHECK_STR(n, "retry-after");
	TU_CHECK_STR(v, "1");
	/* a status line prefix shorter than "HTTP/" is not one */
	TU_CHECK(reg_header_parse(n, sizeof(n), v, sizeof(v), "HTTP", 4) == 0);
}

static void test_b64(void)
{
	unsigned char out[32];
	size_t n = 99;
	TU_CHECK(reg_b64_decode(out, &n, "dXNlcjpwYXNz", 12) == 0); /* user:pass */
	TU_CHECK(n == 9 && memcmp(out, "user:pass", 9) == 0 && out[9] == '\0');
	TU_CHECK(reg_b64_decode(out, &n, "YQ==", 4) == 0 && n == 1 && out[0] == 'a');
	TU_CHECK(reg_b64_decode(out, &n, "YWI=", 4) == 0 && n == 2 && memcmp(out, "ab", 2) == 0);
	TU_CHECK(reg_b64_decode(out, &n, "", 0) == 0 && n == 0);
	TU_CHECK(reg_b64_decode(out, &n, "!!!!", 4) < 0);
}

static void test_url(void)
{
	reg_url u;
	cm_error e;
	TU_CHECK(reg_url_parse(&u, "HTTPS://Reg.Example:5000/v2/a?x=1", 0, &e) == 0);
	TU_CHECK_STR(u.scheme, "https");
	TU_CHECK_STR(u.host, "Reg.Example");
	TU_CHECK_STR(u.port, "5000");
	TU_CHECK(u.port_n == 5000);
	TU_CHECK_STR(u.path, "/v2/a");
	TU_CHECK_STR(u.origin, "https://reg.example:5000");
	TU_CHECK(u.has_query && !u.has_user && !u.has_fragment);
	TU_CHECK(reg_url_parse(&u, "http://[::1]/", 0, &e) == 0);
	TU_CHECK_STR(u.host, "[::1]");
	TU_CHECK(u.port_n == 80 && u.port[0] == '\0');
	TU_CHECK(reg_url_parse(&u, "http://u:p@h/", 0, &e) == 0 && u.has_user);
	TU_CHECK(reg_url_parse(&u, "no url", 0, &e) == CM_EINVAL);
	TU_CHECK(reg_url_parse(&u, "/relative/only", 0, &e) == CM_EINVAL);
	char out[128];
	TU_CHECK(reg_url_add_query(out, sizeof(out), "http://h/up/1", "digest=sha256:ab", &e) == 0);
	TU_CHECK_STR(out, "http://h/up/1?digest=sha256:ab");
	TU_CHECK(reg_url_add_query(out, sizeof(out), "http://h/up/1?_state=x", "digest=d", &e) ==
		 0);
	TU_CHECK_STR(out, "http://h/up/1?_state=x&digest=d");
	TU_CHECK(reg_url_add_query(out, 10, "http://h/up/1", "digest=d", &e) == CM_EINVAL);
	char *r = NULL;
	TU_CHECK(reg_url_resolve(&r, "http://h:1/v2/a/blobs/x", "/cdn/y?sig=1", &e) == 0);
	TU_CHECK_STR(r, "http://h:1/cdn/y?sig=1");
	free(r);
	TU_CHECK(reg_url_resolve(&r, "http://h:1/a/b", "https://cdn.example/z", &e) == 0);
	TU_CHECK_STR(r, "https://cdn.example/z");
	free(r);
	TU_CHECK(reg_url_resolve(&r, "http://h/a", "ftp://x/y", &e) == CM_EINVAL && !r);
	TU_CHECK(reg_url_resolve(&r, "http://h/a", "file:///etc/passwd", &e) == CM_EINVAL && !r);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ferry-test-client.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	TU_RUN(test_challenge_bearer);
	TU_RUN(test_challenge_basic_and_odd);
	TU_RUN(test_retry_after);
	TU_RUN(test_ratelimit);
	TU_RUN(test_key_match);
	TU_RUN(test_lookup_files);
	TU_RUN(test_helper);
	TU_RUN(test_helper_output);
	TU_RUN(test_realm_check);
	TU_RUN(test_secret_buf);
	TU_RUN(test_lookup_bad_json);
	TU_RUN(test_refresh_form);
	TU_RUN(test_token_req);
	TU_RUN(test_resumable_writer);
	TU_RUN(test_route);
	TU_RUN(test_header_parse);
	TU_RUN(test_b64);
	TU_RUN(test_url);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "%s", dir);
	cm_rmtree(cmd);
	TU_EXIT();
}
