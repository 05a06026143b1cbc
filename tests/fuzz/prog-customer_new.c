/* cgi-bin/customer_new.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_customer_new
#include "../../cgi-bin/customer_new.c"
#undef main

const struct tg_program *const fuzz_prog_customer_new = &program;
