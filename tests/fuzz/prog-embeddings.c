/* cgi-bin/embeddings.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_embeddings
#include "../../cgi-bin/embeddings.c"
#undef main

const struct tg_program *const fuzz_prog_embeddings = &program;
