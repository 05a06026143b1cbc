/* cgi-bin/health.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_health
#include "../../cgi-bin/health.c"
#undef main

const struct tg_program *const fuzz_prog_health = &program;
