"""Download the original CLOUDS prompts (see clouds/generation/original_prompts.py).

python tools/fetch_original_prompts.py
python tools/fetch_original_prompts.py --from-file ~/Downloads/prompt_llama70b.txt
"""

import sys

from clouds.generation.original_prompts import main

if __name__ == "__main__":
    sys.exit(main())
