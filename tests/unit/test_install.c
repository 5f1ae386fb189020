/* Unit tests for the install pieces that need no runtime: YAML document
 * splitting and apply order, shell quoting for node runners, mirror files. */
#include <stdlib.h>
#include <string.h>

#include "ins_apply.h"
#include "ins_mirror.h"
#include "ins_runner.h"
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
	cm_error err = {0, ""};
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
	cm_error err = {0, ""};
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
	cm_error err = {0, ""};
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
	cm_error err = {0, ""};
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

int main(void)
{
	TU_RUN(test_split_and_fields);
	TU_RUN(test_order);
	TU_RUN(test_parse_errors);
	TU_RUN(test_shell_and_runner);
	TU_RUN(test_mirror_files);
	TU_EXIT();
}
