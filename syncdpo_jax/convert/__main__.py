"""python -m syncdpo_jax.convert <name> --src DIR --out WORKDIR --config FILE[:ARG]"""

import sys

from syncdpo_jax.convert import CONVERTERS


def main(argv: list[str]) -> int:
  if not argv or argv[0] not in CONVERTERS:
    print(
        f"usage: python -m syncdpo_jax.convert {{{','.join(CONVERTERS)}}} --src DIR --out WORKDIR --config FILE",
        file=sys.stderr,
    )
    return 2
  CONVERTERS[argv[0]].main(argv[1:])
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
