/* cgi-bin/customer.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_customer
#include "../../cgi-bin/customer.c"
#undef main

const struct tg_program *const fuzz_prog_customer = &program;
