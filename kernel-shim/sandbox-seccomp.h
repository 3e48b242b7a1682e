/* sandbox-seccomp.h: the session's seccomp policy, last step of the sandbox. */

#ifndef SANDBOX_SECCOMP_H
#define SANDBOX_SECCOMP_H

#include <stdio.h>

/* sandbox-seccomp.c */
int	sandbox_seccomp_prepare(char **);
int	sandbox_seccomp_install(char **);
int	sandbox_seccomp_install_debug(int *, char **);
int	sandbox_seccomp_print(FILE *, char **);

#endif /* SANDBOX_SECCOMP_H */
