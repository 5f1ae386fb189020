/* ferry-build subcommands: one cmd_<verb>.c each. They parse arguments,
 * call the libraries, print, and return an exit code. */
#ifndef BLD_CMD_H
#define BLD_CMD_H

int cmd_build(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_images(int argc, char **argv);

#endif
