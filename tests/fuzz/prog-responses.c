/* cgi-bin/responses.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_responses
#include "../../cgi-bin/responses.c"
#undef main

const struct tg_program *const fuzz_prog_responses = &program;
