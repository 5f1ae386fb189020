/* ferry-install subcommands: one cmd_<verb>.c each. */
#ifndef INS_CMD_H
#define INS_CMD_H

int cmd_verify(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_mirror_config(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_receipt(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_check_signature(int argc, char **argv);

#endif
