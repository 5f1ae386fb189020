#include <stdio.h>
#include <string.h>

#include "cm_file.h"
#include "cmd.h"
#include "ins_install.h"
#include "ins_install_bundle.h"
#include "ins_mirror.h"

static const char usage_text[] =
    "usage: ferry-install mirror-config BUNDLE --registry HOST:PORT[/PREFIX] [--ca CA.crt]\n"
    "           --format containerd|registries.conf|okd -o DIR --pubkey KEY.pub [--plain-http]\n"
    "\n"
    "Write the files that send pulls of the bundle's images to a mirror, without\n"
    "touching anything (deploy them with MachineConfig, Ansible, ...):\n"
    "  containerd       DIR/<upstream-host>/hosts.toml (+ ferry-ca.crt): copy DIR to\n"
    "                   /etc/containerd/certs.d (the mirror is also the server: no fallback)\n"
    "  registries.conf  DIR/registries.conf.d/ferry.conf and DIR/certs.d/HOST:PORT/ca.crt:\n"
    "                   copy to /etc/containers (CRI-O, podman)\n"
    "  okd              DIR/imagedigestmirrorset.yaml, imagetagmirrorset.yaml (tag refs\n"
    "                   only), registry-ca-configmap.yaml, image-config-patch.yaml\n"
    "The signature and the bundle's metadata are checked first; without --pubkey,\n"
    "--insecure-skip-signature is required (and the output says so).\n";

int cmd_mirror_config(int argc, char **argv)
{
	const char *registry = NULL, *ca = NULL, *format = NULL, *outdir = NULL, *pubkey = NULL;
	int plain = 0, insecure = 0;
	const cmd_opt opts[] = {
	    CMD_S("registry", 'r', &registry),
	    CMD_S("ca", 'c', &ca),
	    CMD_S("format", 'f', &format),
	    CMD_S("output", 'o', &outdir),
	    CMD_S("pubkey", 'p', &pubkey),
	    CMD_F("plain-http", 0, &plain, 1),
	    CMD_F("insecure-skip-signature", 0, &insecure, 1),
	    CMD_END,
	};
	int c = cmd_opts_parse("mirror-config", argc, argv, opts, usage_text, 1, 1);
	if (c >= 0)
		return c;
	if (!registry || !format || !outdir) {
		fputs(usage_text, stderr);
		return 64;
	}
	/* the address goes into hosts.toml, registries.conf and OKD objects:
	 * HOST[:PORT][/PREFIX] and nothing else (no quotes, no newlines) */
	cm_error terr = {0};
	if (ins_push_check_target(registry, &terr) < 0)
		return cmd_usage_error("mirror-config", "--registry: %s", terr.msg);
	if (!pubkey && !insecure)
		return cmd_usage_error(
		    "mirror-config",
		    "a public key is required (--pubkey "
		    "KEY.pub): this output goes onto nodes; --insecure-skip-signature "
		    "skips the check");
	if (!pubkey)
		fprintf(stderr, "ferry-install mirror-config: WARNING: signature NOT checked "
				"(--insecure-skip-signature)\n");
	ins_mirror_format f;
	if (ins_mirror_format_parse(&f, format) < 0)
		return cmd_usage_error("mirror-config", "--format is containerd, registries.conf "
							"or okd");
	cm_error err = {0};
	cm_buf capem = CM_BUF_INIT;
	ins_bundle b;
	memset(&b, 0, sizeof(b));
	int rc = ca ? cm_file_read(&capem, ca, (size_t)1 << 20, &err) : 0;
	if (rc == 0 && ca && !strstr(capem.data ? capem.data : "", "-----BEGIN CERTIFICATE-----"))
		rc = cm_error_set(&err, CM_EINVAL, "%s holds no PEM certificate", ca);
	ins_bundle_opts bo = {pubkey, pubkey == NULL, 1, 0};
	if (rc == 0)
		rc = ins_bundle_open(&b, argv[optind], &bo, &err);
	ins_mfiles files;
	memset(&files, 0, sizeof(files));
	if (rc == 0) {
		ins_mirror_opts mo = {registry, capem.data, plain, b.name, NULL};
		rc = ins_mirror_render(&files, b.images, b.n_images, f, &mo, &err);
	}
	if (rc == 0)
		rc = ins_mirror_write(&files, outdir, &err);
	if (rc < 0) {
		cmd_fail("mirror-config", rc, &err, argv[optind], NULL);
	} else {
		for (size_t i = 0; i < files.n; i++)
			printf("wrote %s/%s\n", outdir, files.v[i].path);
		printf("%zu images of %s %s mirrored at %s%s\n", b.n_images, b.name, b.version,
		       registry,
		       pubkey ? "" : " (signature NOT checked: --insecure-skip-signature)");
		if (f == INS_MF_OKD && files.tag_repos)
			printf("WARNING: imagetagmirrorset.yaml (%zu repositories pulled by tag): "
			       "applying an ImageTagMirrorSet drains and reboots every node\n",
			       files.tag_repos);
	}
	ins_mfiles_free(&files);
	ins_bundle_close(&b);
	cm_buf_free(&capem);
	return cm_exit_code(rc);
}
