"""Regenerates the model table in README.md from the registry.

    python scripts/make_readme_table.py

Builds every full-size model once (weights only, nothing runs) to count its
parameters and multiply-accumulates.
"""

import os

from keras_cv_course.applications import catalog

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def main():
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    updated = catalog.replace_table(text, catalog.full_size_stats())
    with open(README, "w", encoding="utf-8") as handle:
        handle.write(updated)
    print(f"updated {README}")


if __name__ == "__main__":
    main()
