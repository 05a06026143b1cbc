/* cgi-bin/budget.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_budget
#include "../../cgi-bin/budget.c"
#undef main

const struct tg_program *const fuzz_prog_budget = &program;
