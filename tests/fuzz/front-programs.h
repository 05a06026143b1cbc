/*
 * front-programs: the real route tables of the cgi-bin programs, for
 * fuzz-front.
 *
 * Each prog-<name>.c includes cgi-bin/<name>.c as it is, with its main()
 * renamed, and hands out its static struct tg_program; so the fuzzer routes,
 * authenticates and validates with exactly the tables the programs serve
 * (paths, methods, keys, body kinds, fields), and a field added to a program
 * is fuzzed without a change here.  The handlers are linked but never run.
 */
#ifndef TG_FUZZ_FRONT_PROGRAMS_H
#define TG_FUZZ_FRONT_PROGRAMS_H

#include "app.h"

extern const struct tg_program *const fuzz_prog_budget;
extern const struct tg_program *const fuzz_prog_budget_new;
extern const struct tg_program *const fuzz_prog_chat_completions;
extern const struct tg_program *const fuzz_prog_customer;
extern const struct tg_program *const fuzz_prog_customer_info;
extern const struct tg_program *const fuzz_prog_customer_new;
extern const struct tg_program *const fuzz_prog_health;
extern const struct tg_program *const fuzz_prog_key;
extern const struct tg_program *const fuzz_prog_models;
extern const struct tg_program *const fuzz_prog_responses;
extern const struct tg_program *const fuzz_prog_embeddings;
extern const struct tg_program *const fuzz_prog_completions;
extern const struct tg_program *const fuzz_prog_messages;

/* The renamed main() of each program. */
int fuzz_main_budget(void);
int fuzz_main_budget_new(void);
int fuzz_main_chat_completions(void);
int fuzz_main_customer(void);
int fuzz_main_customer_info(void);
int fuzz_main_customer_new(void);
int fuzz_main_health(void);
int fuzz_main_key(void);
int fuzz_main_messages(void);
int fuzz_main_models(void);
int fuzz_main_responses(void);
int fuzz_main_embeddings(void);
int fuzz_main_completions(void);

#endif
