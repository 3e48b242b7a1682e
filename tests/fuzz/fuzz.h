/* fuzz.h: what the libFuzzer harnesses and their replay driver share. */
/*
 * Each tests/fuzz/fuzz-TARGET.c defines LLVMFuzzerTestOneInput. clang
 * links it with libFuzzer (make fuzz); the normal build links it with
 * replay.c's main, which feeds it the checked-in corpus and crash inputs
 * (make test). A harness checks what must hold with FUZZ_CHECK, which
 * aborts: a failed oracle is a crash to libFuzzer and to the replay alike.
 */
#ifndef CELLBLOCK_FUZZ_H
#define CELLBLOCK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(e) do {						\
	if (!(e)) {							\
		fprintf(stderr, "%s:%d: fuzz check failed: %s\n",	\
		    __FILE__, __LINE__, #e);				\
		abort();						\
	}								\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#endif
