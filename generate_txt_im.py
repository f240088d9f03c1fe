"""Generate an unlabelled urban-scene image set with Stable Diffusion (see clouds/generation/cli.py).

python generate_txt_im.py --input prompt_llama70b --folder llama70b_v2 --num-images 5000
"""

import sys

from clouds.generation.cli import main

if __name__ == "__main__":
    sys.exit(main())
