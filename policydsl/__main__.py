"""`python -m policydsl`: the same as the `policy` command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="policy")
