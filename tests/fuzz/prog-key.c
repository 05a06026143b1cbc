/* cgi-bin/key.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_key
#include "../../cgi-bin/key.c"
#undef main

const struct tg_program *const fuzz_prog_key = &program;
