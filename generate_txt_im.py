"""Generate an unlabelled urban-scene image set with Stable Diffusion (see clouds/generation/cli.py).

python tools/fetch_original_prompts.py   # the paper's prompts -> ./prompt_llama70b.txt
python generate_txt_im.py --input prompt_llama70b --folder sd_llama70b_v2 --num-images 5000 --part 0
"""

import sys

from clouds.generation.cli import main

if __name__ == "__main__":
    sys.exit(main())
