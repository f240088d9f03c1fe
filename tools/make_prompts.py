"""Write a prompt file of urban driving scenes (see clouds/generation/make_prompts.py).

python tools/make_prompts.py --backend templates --num-prompts 100 --output prompts.txt
python tools/make_prompts.py --backend llm --model <causal LM id or folder> --output prompts.txt
"""

import sys

from clouds.generation.make_prompts import main

if __name__ == "__main__":
    sys.exit(main())
