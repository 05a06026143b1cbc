/* cgi-bin/completions.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_completions
#include "../../cgi-bin/completions.c"
#undef main

const struct tg_program *const fuzz_prog_completions = &program;
