/* The retry decision on a failed kubectl apply (ins_kube_transient: the API
 * Status reason, not prose) and the table of target drivers. */
#include <string.h>

#include "ins_kubectl.h"
#include "ins_nodes.h"
#include "tu.h"

static void test_transient(void)
{
	/* refused by the API server: final */
	TU_CHECK(!ins_kube_transient("Error from server (BadRequest): error when creating "
				     "\"STDIN\": Deployment in version \"v1\" cannot be handled"));
	TU_CHECK(!ins_kube_transient("Error from server (Invalid): error when creating \"STDIN\": "
				     "x: Invalid value"));
	TU_CHECK(!ins_kube_transient("Error from server (NotFound): error when creating \"STDIN\": "
				     "namespaces \"a\" not found"));
	TU_CHECK(!ins_kube_transient("Error from server (Forbidden): ..."));
	/* one refusal among passing errors is still final */
	TU_CHECK(!ins_kube_transient("Error from server (Conflict): x\nError from server "
				     "(AlreadyExists): y\n"));
	/* reasons that pass */
	TU_CHECK(ins_kube_transient("Error from server (InternalError): error when creating "
				    "\"STDIN\": Internal error occurred: failed calling webhook"));
	TU_CHECK(ins_kube_transient("Error from server (TooManyRequests): slow down"));
	TU_CHECK(ins_kube_transient("Error from server (ServiceUnavailable): x\n"
				    "Error from server (Timeout): y"));
	/* no Status: the client failed before an answer */
	TU_CHECK(ins_kube_transient(
	    "error: resource mapping not found for name: \"w1\" "
	    "namespace: \"\" from \"STDIN\": no matches for kind \"Widget\" "
	    "in version \"demo.ferry.dev/v1\"\nensure CRDs are installed first"));
	TU_CHECK(ins_kube_transient("The connection to the server 127.0.0.1:6443 was refused"));
	TU_CHECK(ins_kube_transient(""));
	/* a reason that is no word is no Status */
	TU_CHECK(ins_kube_transient("Error from server (Bad Request): x"));
}

static void test_drivers(void)
{
	const char *arg = NULL;
	const ins_driver *d = ins_driver_find("kind:demo", &arg);
	TU_CHECK(d && d->kind == INS_T_KIND && arg && strcmp(arg, "demo") == 0);
	TU_CHECK(d && d->mode == INS_MODE_LOAD && d->applies && d->runner == INS_RUN_DOCKER);
	d = ins_driver_find("openshift", &arg);
	TU_CHECK(d && d->kind == INS_T_OKD && !arg && d->mode == INS_MODE_MIRROR);
	TU_CHECK(d && d->files == INS_FILES_OKD && d->kubectl && strcmp(d->kubectl, "oc") == 0);
	d = ins_driver_find("cri-o", &arg);
	TU_CHECK(d && d->kind == INS_T_CRIO && d->files == INS_FILES_REGISTRIES && !d->applies);
	TU_CHECK(ins_driver_find("kin", &arg) == NULL && ins_driver_find("kindx", &arg) == NULL);
	TU_CHECK(ins_driver_find("", &arg) == NULL);
	for (int t = INS_T_KIND; t <= INS_T_DOCKER; t++) {
		d = ins_driver_of((ins_target_kind)t);
		TU_CHECK(d && (int)d->kind == t && d->name && d->def_arg);
	}
	TU_CHECK(ins_driver_of((ins_target_kind)0) == NULL);
	TU_CHECK(ins_runtime_parse("containerd://1.7.1") == INS_RT_CONTAINERD);
	TU_CHECK(ins_runtime_parse("cri-o://1.28") == INS_RT_CRIO);
	TU_CHECK(ins_runtime_parse("docker://24") == INS_RT_DOCKER);
	TU_CHECK(ins_runtime_parse("rkt://1") == INS_RT_UNKNOWN && ins_runtime_parse(NULL) == 0);
}

int main(void)
{
	TU_RUN(test_transient);
	TU_RUN(test_drivers);
	TU_EXIT();
}
