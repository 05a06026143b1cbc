/* cgi-bin/customer_info.c's routes for fuzz-front (see front-programs.h). */
#include "front-programs.h"

#define main fuzz_main_customer_info
#include "../../cgi-bin/customer_info.c"
#undef main

const struct tg_program *const fuzz_prog_customer_info = &program;
