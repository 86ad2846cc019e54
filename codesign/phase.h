/* Phase timing for performance work (SYSEXT_SIGN_TIMING=1): see phase.c. */
#ifndef SX_CS_PHASE_H
#define SX_CS_PHASE_H

/* Print the time since the previous call on this thread, labelled `name` (NULL: only start
 * the clock). A no-op unless SYSEXT_SIGN_TIMING is set. */
void sx_cs_phase(const char *name);

#endif
