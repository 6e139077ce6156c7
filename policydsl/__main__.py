"""`python -m policydsl`: the same as the `policy` command."""

from .cli import program

if __name__ == "__main__":
    program()
