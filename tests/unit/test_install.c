/* Unit tests for the install pieces that need no runtime: YAML document
 * splitting and apply order, shell quoting for node runners, mirror files. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ins_apply.h"
#include "cm_file.h"
#include "ins_mirror.h"
#include "ins_install_bundle.h"
#include "ins_place.h"
#include "ins_runner.h"
#include "reg_digest.h"
#include "reg_source.h"
#include "tu.h"

static void test_split_and_fields(void)
{
	const char *y = "# leading comment\n"
			"---\n"
			"apiVersion: v1\n"
			"kind: ConfigMap\n"
			"metadata:\n"
			"  name: cm\n"
			"  namespace: ns1\n"
			"data:\n"
			"  script: |\n"
			"    echo ---not a marker\n"
			"    kind: Nope\n"
			"---\n"
			"# only a comment\n"
			"---\n"
			"apiVersion: apps/v1\n"
			"kind: Deployment\n"
			"metadata: {name: d, labels: {kind: x}}\n"
			"spec:\n"
			"  template:\n"
			"    metadata:\n"
			"      name: inner\n"
			"...\n"
			"---\n"
			"apiVersion: apiextensions.k8s.io/v1\n"
			"kind: CustomResourceDefinition\n"
			"metadata:\n"
			"  name: ws.x.dev\n"
			"spec:\n"
			"  names:\n"
			"    kind: W\n";
	ins_kdoc *d = NULL;
	size_t n = 0;
	cm_error err = {0};
	TU_CHECK(ins_apply_parse(&d, &n, y, strlen(y), "manifests/01-x.yaml", &err) == 0);
	TU_CHECK(n == 3);
	if (n == 3) {
		TU_CHECK_STR(d[0].kind, "ConfigMap");
		TU_CHECK_STR(d[0].name, "cm");
		TU_CHECK_STR(d[0].ns, "ns1");
		TU_CHECK(d[0].doc == 1);
		TU_CHECK(strstr(d[0].text, "echo ---not a marker") != NULL);
		TU_CHECK_STR(d[1].kind, "Deployment");
		TU_CHECK_STR(d[1].name, "d"); /* not the pod template's name */
		TU_CHECK_STR(d[1].ns, "");
		TU_CHECK_STR(d[2].crd_kind, "W");
		TU_CHECK(d[2].phase == 1);
	}
	free(d);
}

static void test_order(void)
{
	const char *y =
	    "kind: Widget\napiVersion: x/v1\nmetadata: {name: w}\n---\n"
	    "kind: Alpha\napiVersion: x/v1\nmetadata: {name: a}\n---\n"
	    "kind: ValidatingWebhookConfiguration\napiVersion: v1\nmetadata: {name: v}\n---\n"
	    "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: d}\n---\n"
	    "kind: ClusterRole\napiVersion: v1\nmetadata: {name: r}\n---\n"
	    "kind: CustomResourceDefinition\napiVersion: v1\nmetadata: {name: c}\n---\n"
	    "kind: Service\napiVersion: v1\nmetadata: {name: s}\n---\n"
	    "kind: Namespace\napiVersion: v1\nmetadata: {name: n}\n";
	ins_kdoc *d = NULL;
	size_t n = 0;
	cm_error err = {0};
	TU_CHECK(ins_apply_parse(&d, &n, y, strlen(y), "f", &err) == 0);
	ins_apply_sort(d, n);
	const char *want[] = {
	    "Namespace",  "CustomResourceDefinition",	    "ClusterRole", "Service",
	    "Deployment", "ValidatingWebhookConfiguration", "Alpha",	   "Widget"};
	TU_CHECK(n == 8);
	for (size_t i = 0; i < n && i < 8; i++)
		TU_CHECK_STR(d[i].kind, want[i]);
	free(d);
}

static void test_parse_errors(void)
{
	const char *y = "kind: ConfigMap\nmetadata: {name: x}\n"; /* no apiVersion */
	ins_kdoc *d = NULL;
	size_t n = 0;
	cm_error err = {0};
	TU_CHECK(ins_apply_parse(&d, &n, y, strlen(y), "manifests/02-bad.yaml", &err) < 0);
	TU_CHECK(strstr(err.msg, "manifests/02-bad.yaml document 1") != NULL);
	free(d);
	d = NULL;
	n = 0;
	const char *bad = "kind: [unclosed\n";
	TU_CHECK(ins_apply_parse(&d, &n, bad, strlen(bad), "m", &err) < 0);
	TU_CHECK(strstr(err.msg, "YAML error") != NULL);
	free(d);
}

static void test_shell_and_runner(void)
{
	cm_buf b = CM_BUF_INIT;
	const char *argv[] = {"ctr", "--namespace=k8s.io", "it's", "a b", "", NULL};
	TU_CHECK(ins_shell_join(&b, argv, NULL) == 0);
	TU_CHECK_STR(b.data, "ctr --namespace=k8s.io 'it'\\''s' 'a b' ''");
	cm_buf_free(&b);
	ins_runner r;
	memset(&r, 0, sizeof(r));
	r.kind = INS_RUN_MINIKUBE;
	r.sudo = 1;
	snprintf(r.profile, sizeof(r.profile), "mk");
	snprintf(r.node, sizeof(r.node), "mk-m02");
	ins_argv a = {NULL, 0, 0};
	const char *cmd[] = {"docker", "load", NULL};
	TU_CHECK(ins_runner_wrap(&a, &r, cmd, NULL) == 0);
	cm_buf_free(&b);
	ins_shell_join(&b, (const char *const *)a.v, NULL);
	TU_CHECK_STR(b.data, "minikube ssh -p mk -n mk-m02 -- 'sudo -n docker load'");
	ins_argv_free(&a);
	cm_buf_free(&b);
	r.kind = INS_RUN_DOCKER;
	r.sudo = 0;
	snprintf(r.node, sizeof(r.node), "kind-worker");
	TU_CHECK(ins_runner_wrap(&a, &r, cmd, NULL) == 0);
	ins_shell_join(&b, (const char *const *)a.v, NULL);
	TU_CHECK_STR(b.data, "docker exec -i kind-worker docker load");
	ins_argv_free(&a);
	cm_buf_free(&b);
}

static void test_mirror_files(void)
{
	ins_image im[2];
	memset(im, 0, sizeof(im));
	cm_error err = {0};
	TU_CHECK(reg_ref_parse(&im[0].r, "mysql:8.0", &err) == 0);
	TU_CHECK(reg_ref_parse(&im[1].r,
			       "quay.io/a/b@sha256:"
			       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			       &err) == 0);
	for (int i = 0; i < 2; i++) {
		reg_ref_string(im[i].ref, sizeof(im[i].ref), &im[i].r);
		reg_ref_repo(im[i].repo, sizeof(im[i].repo), &im[i].r);
	}
	ins_mirror_opts mo = {"reg.lab:5000",
			      "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n", 0,
			      "Demo Bundle", NULL};
	ins_mfiles f;
	TU_CHECK(ins_mirror_render(&f, im, 2, INS_MF_CONTAINERD, &mo, &err) == 0);
	const ins_mfile *h = ins_mirror_find(&f, "docker.io/hosts.toml");
	TU_CHECK(h && strstr(h->text, "server = \"https://reg.lab:5000/v2/docker.io\"\n"));
	TU_CHECK(h && strstr(h->text, "override_path = true"));
	TU_CHECK(ins_mirror_find(&f, "quay.io/ferry-ca.crt") != NULL);
	ins_mfiles_free(&f);
	TU_CHECK(ins_mirror_render(&f, im, 2, INS_MF_REGISTRIES, &mo, &err) == 0);
	h = ins_mirror_find(&f, "registries.conf.d/ferry.conf");
	TU_CHECK(h && strstr(h->text, "prefix = \"docker.io/library/mysql\"\n"));
	TU_CHECK(h && strstr(h->text, "location = \"reg.lab:5000/quay.io/a/b\"\n"));
	TU_CHECK(ins_mirror_find(&f, "certs.d/reg.lab:5000/ca.crt") != NULL);
	ins_mfiles_free(&f);
	TU_CHECK(ins_mirror_render(&f, im, 2, INS_MF_OKD, &mo, &err) == 0);
	TU_CHECK(f.tag_repos == 1); /* the digest-only reference needs no ITMS */
	h = ins_mirror_find(&f, "imagedigestmirrorset.yaml");
	TU_CHECK(h && strstr(h->text, "name: ferry-demo-bundle\n"));
	TU_CHECK(h && strstr(h->text, "mirrorSourcePolicy: NeverContactSource"));
	h = ins_mirror_find(&f, "imagetagmirrorset.yaml");
	TU_CHECK(h && !strstr(h->text, "quay.io/a/b"));
	h = ins_mirror_find(&f, "registry-ca-configmap.yaml");
	TU_CHECK(h && strstr(h->text, "  reg.lab..5000: |\n    -----BEGIN CERTIFICATE-----\n"));
	ins_mfiles_free(&f);
	char name[80];
	ins_mirror_object_name(name, sizeof(name), "--Kubeflow 1.9!!");
	TU_CHECK_STR(name, "ferry-kubeflow-1-9");
}

/* From `ctr plugins ls -d`: the content root, the policy gate, and which
 * snapshotters loaded (a plugin with an Error: block did not). */
/* Place member m through the copy pipeline's bundle source and reader. */
static int place_member(int *placed, const ins_place *p, const ins_bundle *b, const ins_member *m,
			cm_error *err)
{
	reg_source *src;
	reg_reader *r;
	reg_desc d = {0};
	int rc = reg_digest_from_hex(&d.digest, m->hex, err);
	d.size = m->size;
	if (rc == 0 && (rc = reg_source_bundle_open(&src, b->x, NULL, 0, err)) == 0) {
		if ((rc = src->ops->open_blob(src, &d, &r, err)) == 0) {
			rc = ins_place_reader(placed, p, r, err);
			reg_reader_free(r);
		}
		reg_source_free(src);
	}
	return rc;
}

static void test_place_parse(void)
{
	char why[256];
	ins_plugins pp;
	char ok[] = "Type:          io.containerd.content.v1\n"
		    "ID:            content\n"
		    "Exports:      \n"
		    "               root      /var/lib/x y/io.containerd.content.v1.content\n"
		    "                            \n"
		    "Type:          io.containerd.snapshotter.v1\n"
		    "ID:            overlayfs\n"
		    "Exports:      \n"
		    "               root      /var/lib/x/overlayfs\n"
		    "Error:        \n"
		    "               Code:        Unknown\n"
		    "               Message:     not supported: skip plugin\n"
		    "Type:          io.containerd.snapshotter.v1\n"
		    "ID:            native\n"
		    "Exports:      \n"
		    "               root      /var/lib/x/native\n"
		    "Type:          io.containerd.metadata.v1\n"
		    "ID:            bolt\n"
		    "Exports:      \n"
		    "               path        /var/lib/x/meta.db\n"
		    "               policy      shared\n";
	ins_plugins_parse(&pp, ok);
	TU_CHECK(ins_place_usable(why, sizeof(why), &pp) == 1);
	TU_CHECK_STR(pp.content_root, "/var/lib/x y/io.containerd.content.v1.content");
	TU_CHECK(pp.native_ok && !pp.overlayfs_ok);
	char iso[] = "Type: io.containerd.content.v1\nID: content\nExports:\n root /r\n"
		     "Type: io.containerd.metadata.v1\nID: bolt\nExports:\n policy isolated\n"
		     "Type: io.containerd.snapshotter.v1\nID: overlayfs\n";
	ins_plugins_parse(&pp, iso);
	TU_CHECK(ins_place_usable(why, sizeof(why), &pp) == 0);
	TU_CHECK(strstr(why, "isolated") != NULL);
	TU_CHECK(pp.overlayfs_ok && !pp.native_ok); /* the last block counts too */
	/* the grpc content service has no root: not taken for the plugin's */
	char none[] = "Type: io.containerd.grpc.v1\nID: content\nExports:\n root /nope\n";
	ins_plugins_parse(&pp, none);
	TU_CHECK(ins_place_usable(why, sizeof(why), &pp) == 0);
	TU_CHECK(strstr(why, "no content root") != NULL);
	TU_CHECK_STR(pp.content_root, "");
}

/* A bundle of SHA256SUMS, a signature placeholder, bundle.json and one
 * blob (its bytes need not match: the reader finds out). */
static int tiny_bundle(const char *path, const char *hex, const char *blob, size_t n)
{
	char sums[512], name[96];
	snprintf(name, sizeof(name), "blobs/sha256/%s", hex);
	reg_digest dj;
	cm_error e;
	reg_digest_buf(&dj, "{}", 2, &e);
	snprintf(sums, sizeof(sums), "SHA256 (%s) = %s\nSHA256 (bundle.json) = %s\n", name, hex,
		 REG_DIGEST_HEX(&dj));
	const char *names[4] = {"SHA256SUMS", "SHA256SUMS.sig", "bundle.json", name};
	const char *data[4] = {sums, "unsigned", "{}", blob};
	size_t lens[4] = {strlen(sums), 8, 2, n};
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_none(a);
	int rc = archive_write_open_filename(a, path) == ARCHIVE_OK ? 0 : -1;
	for (int i = 0; rc == 0 && i < 4; i++) {
		struct archive_entry *en = archive_entry_new();
		archive_entry_set_pathname(en, names[i]);
		archive_entry_set_size(en, (la_int64_t)lens[i]);
		archive_entry_set_filetype(en, AE_IFREG);
		archive_entry_set_perm(en, 0644);
		if (archive_write_header(a, en) != ARCHIVE_OK ||
		    archive_write_data(a, data[i], lens[i]) != (la_ssize_t)lens[i])
			rc = -1;
		archive_entry_free(en);
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		rc = -1;
	archive_write_free(a);
	return rc;
}

/* Placing: the blob lands under blobs/sha256 read-only with the right
 * bytes; a blob the store holds is not rewritten; bytes that do not match
 * their digest are refused and leave nothing behind. */
static void test_place_member(void)
{
	char dir[] = "/tmp/ferry-place-test.XXXXXX";
	TU_CHECK(mkdtemp(dir) != NULL);
	char bpath[512], root[512];
	snprintf(bpath, sizeof(bpath), "%s/bundle", dir);
	snprintf(root, sizeof(root), "%s/content", dir);
	cm_error err = {0};
	TU_CHECK(cm_mkdirs(root, &err) == 0);
	const char body[] = "....layer bytes in the middle of a bundle....";
	reg_digest d;
	TU_CHECK(reg_digest_buf(&d, body + 4, 17, &err) == 0);
	/* two bundles: one whose blob matches SHA256SUMS, one whose blob
	 * member holds other bytes (same length) under that digest */
	char bad[512];
	snprintf(bad, sizeof(bad), "%s/bad", dir);
	TU_CHECK(tiny_bundle(bpath, REG_DIGEST_HEX(&d), body + 4, 17) == 0);
	TU_CHECK(tiny_bundle(bad, REG_DIGEST_HEX(&d), body + 5, 17) == 0);

	ins_bundle b, bb;
	ins_bundle_opts bo = {NULL, 1, 0, 0};
	TU_CHECK(ins_bundle_open(&b, bpath, &bo, &err) == 0);
	bo.metadata_only = 1; /* the content of bad is hashed when it is read */
	TU_CHECK(ins_bundle_open(&bb, bad, &bo, &err) == 0);
	char bpn[96];
	snprintf(bpn, sizeof(bpn), "blobs/sha256/%s", REG_DIGEST_HEX(&d));
	const ins_member *mp = ins_bundle_member(&b, bpn), *mbad = ins_bundle_member(&bb, bpn);
	TU_CHECK(mp != NULL && mbad != NULL);
	if (!mp || !mbad)
		return;
	const ins_member m = *mp; /* a copy works too: found by name */

	/* a killed run's temp folder is swept; a live one's is kept */
	char stale[600], live[600];
	snprintf(stale, sizeof(stale), "%s/ferry-place.%d", root, 0x7ffffff0);
	snprintf(live, sizeof(live), "%s/ferry-place.1", root);
	TU_CHECK(mkdir(stale, 0700) == 0 && mkdir(live, 0700) == 0);
	ins_place p;
	TU_CHECK(ins_place_open(&p, root, &err) == 0);
	struct stat st0;
	TU_CHECK(stat(stale, &st0) < 0);
	TU_CHECK(stat(live, &st0) == 0);
	struct stat st;
	TU_CHECK(stat(p.empty, &st) == 0 && st.st_size == 0 && S_ISREG(st.st_mode));
	int placed = -1;
	TU_CHECK(place_member(&placed, &p, &b, &m, &err) == 0);
	TU_CHECK(placed == 1);
	char final[1024];
	snprintf(final, sizeof(final), "%s/blobs/sha256/%s", root, m.hex);
	cm_buf got = CM_BUF_INIT;
	TU_CHECK(cm_file_read(&got, final, 1024, &err) == 0);
	TU_CHECK(got.len == 17 && memcmp(got.data, body + 4, 17) == 0);
	cm_buf_free(&got);
	TU_CHECK(stat(final, &st) == 0 && (st.st_mode & 0777) == 0444);
	TU_CHECK(place_member(&placed, &p, &b, &m, &err) == 0);
	TU_CHECK(placed == 0); /* held already */
	ins_place_unlink(&p, m.hex);
	TU_CHECK(stat(final, &st) < 0);

	/* other bytes under that digest: refused, no blob, no temp */
	TU_CHECK(place_member(&placed, &p, &bb, mbad, &err) == CM_EVERIFY);
	TU_CHECK(strstr(err.msg, m.hex) != NULL);
	TU_CHECK(placed == 0 && stat(final, &st) < 0);
	char tmp[1024];
	TU_CHECK(snprintf(tmp, sizeof(tmp), "%s/%s", p.tmp, m.hex) < (int)sizeof(tmp));
	TU_CHECK(stat(tmp, &st) < 0);

	/* bytes from memory (the gc pin) */
	reg_digest pd;
	TU_CHECK(reg_digest_buf(&pd, "pin", 3, &err) == 0);
	TU_CHECK(ins_place_bytes(&placed, &p, REG_DIGEST_HEX(&pd), "pin", 3, &err) == 0);
	TU_CHECK(placed == 1);

	char tdir[sizeof(p.tmp)];
	snprintf(tdir, sizeof(tdir), "%s", p.tmp);
	ins_place_close(&p);
	TU_CHECK(stat(tdir, &st) < 0); /* the temp folder is gone */
	TU_CHECK(p.root[0] == '\0');
	ins_place_close(&p);
	ins_place_close(NULL);
	TU_CHECK(ins_place_open(&p, "/nonexistent/ferry/content", &err) < 0);
	TU_CHECK(p.root[0] == '\0' && p.tmp[0] == '\0');
	ins_bundle_close(&b);
	ins_bundle_close(&bb);
	cm_rmtree(dir);
}

int main(void)
{
	TU_RUN(test_split_and_fields);
	TU_RUN(test_order);
	TU_RUN(test_parse_errors);
	TU_RUN(test_shell_and_runner);
	TU_RUN(test_mirror_files);
	TU_RUN(test_place_parse);
	TU_RUN(test_place_member);
	TU_EXIT();
}
