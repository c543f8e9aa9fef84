"""Other libraries' trainers run on genpo envs and configs, for side-by-side comparisons."""
