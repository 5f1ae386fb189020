/* ferry-build: make a signed bundle on a connected host. */
#include "cm_verb.h"
#include "cmd.h"

static const cm_verb verbs[] = {
    {"build", cmd_build, "build SPEC.yaml -o BUNDLE.tar --key KEY  make a signed bundle"},
    {"keygen", cmd_keygen, "keygen [-o PREFIX]                     make an Ed25519 signing key"},
    {"images", cmd_images, "images [--json] PATH|SPEC...            list the images manifests use"},
};

int main(int argc, char **argv)
{
	return cm_verb_main("ferry-build", verbs, sizeof(verbs) / sizeof(verbs[0]),
			    "exit codes: 0 ok, 1 error, 2 verification failed, 64 usage", argc,
			    argv);
}
