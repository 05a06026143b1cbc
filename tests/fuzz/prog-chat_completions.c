/* cgi-bin/chat_completions.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_chat_completions
#include "../../cgi-bin/chat_completions.c"
#undef main

const struct tg_program *const fuzz_prog_chat_completions = &program;
