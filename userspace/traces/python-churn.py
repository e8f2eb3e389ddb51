# A small allocation churn: buffers of 150 KiB to 3 MiB, freed in a
# scrambled order, some grown in place (realloc of an mmapped chunk is mremap).
import random
random.seed(7)
live = []
for step in range(120):
    if live and random.random() < 0.45:
        del live[random.randrange(len(live))]
    else:
        b = bytearray(random.randrange(150_000, 3_000_000))
        if random.random() < 0.3:
            b.extend(bytes(random.randrange(100_000, 1_000_000)))
        live.append(b)
