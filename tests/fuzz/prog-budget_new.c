/* cgi-bin/budget_new.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_budget_new
#include "../../cgi-bin/budget_new.c"
#undef main

const struct tg_program *const fuzz_prog_budget_new = &program;
