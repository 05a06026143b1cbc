/* cgi-bin/models.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_models
#include "../../cgi-bin/models.c"
#undef main

const struct tg_program *const fuzz_prog_models = &program;
