/* cgi-bin/messages.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_messages
#include "../../cgi-bin/messages.c"
#undef main

const struct tg_program *const fuzz_prog_messages = &program;
