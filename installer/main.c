/* ferry-install: verify, serve and install a bundle in the isolated lab.
 * Links verify-only signing code. */
#include "cm_verb.h"
#include "cmd.h"

static const cm_verb verbs[] = {
    {"verify", cmd_verify, "verify BUNDLE --pubkey KEY.pub      check signature and every digest"},
    {"inspect", cmd_inspect,
     "inspect BUNDLE [--pubkey KEY.pub] [--json]  list what a bundle holds"},
    {"serve", cmd_serve,
     "serve BUNDLE --pubkey KEY.pub [--listen ADDR:PORT] [--tls-self-signed DIR]  OCI registry "
     "from the bundle"},
    {"install", cmd_install,
     "install BUNDLE --pubkey KEY.pub --target TARGET [--mode load|mirror|push] [--dry-run]"},
    {"mirror-config", cmd_mirror_config,
     "mirror-config BUNDLE --registry HOST:PORT [--ca CA] --format containerd|registries.conf|okd "
     "-o DIR"},
    {"push", cmd_push,
     "push BUNDLE --pubkey KEY.pub --to HOST[:PORT][/PREFIX]  copy every image into a registry"},
    {"receipt", cmd_receipt,
     "receipt -o RECEIPT.json --pubkey KEY.pub --bundle B...  what the lab holds (for --base)"},
    {"diff", cmd_diff,
     "diff A B --pubkey KEY.pub [--json]  images, manifests, models and bytes B changes"},
    {"check-signature", cmd_check_signature,
     "check-signature --key COSIGN.pub [--identity PATTERN] DIR  cosign signatures a client "
     "fetched"},
};

int main(int argc, char **argv)
{
	return cm_verb_main("ferry-install", verbs, sizeof(verbs) / sizeof(verbs[0]),
			    "exit codes: 0 ok, 1 error, 2 verification failed, 64 usage", argc,
			    argv);
}
