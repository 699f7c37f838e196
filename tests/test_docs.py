"""The documentation against the repository: README.md stays a front page, every relative link
in README.md, data/README.md and docs/*.md reaches a file (and heading), and every option the
manuals show for a tool is one that tool accepts."""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted([os.path.join(ROOT, 'README.md'), os.path.join(ROOT, 'data', 'README.md')]
               + glob.glob(os.path.join(ROOT, 'docs', '*.md')))


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def heading_anchors(path):
    """GitHub's anchors: headings lower-cased, punctuation dropped, spaces to hyphens."""
    return {re.sub(r'[^\w\- ]', '', h.strip().lower()).replace(' ', '-')
            for h in re.findall(r'^#+ (.*)$', read(path), re.M)}


def test_readme_is_a_front_page():
    text = read(os.path.join(ROOT, 'README.md'))
    assert len(text.splitlines()) < 120
    commands = re.search(r'```bash\n(.*?)```', text, re.S).group(1).splitlines()
    assert commands[0].startswith('pip install -r requirements.txt && make demo')
    assert commands[1].startswith('make test')
    for script in ('faster_rcnn_end2end.sh 0 VGG16 pascal_voc', 'faster_rcnn_alt_opt.sh',
                   'fast_rcnn.sh'):
        assert script in text


@pytest.mark.parametrize('page', PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_links_resolve(page):
    for target in re.findall(r'\]\(([^)\s]+)\)', read(page)):
        if re.match(r'[a-z]+://', target):
            continue
        path, _, anchor = target.partition('#')
        full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        assert os.path.exists(full), (page, target)
        if anchor:
            assert anchor in heading_anchors(full), (page, target)


def tool_options():
    """{tool file name: the option strings its source (and the shared _common.py) declares}."""
    shared = set(re.findall(r"'(--?[\w-]+)'", read(os.path.join(ROOT, 'tools', '_common.py'))))
    return {os.path.basename(p): shared | set(re.findall(r"'(--?[\w-]+)'", read(p)))
            for p in glob.glob(os.path.join(ROOT, 'tools', '*.py'))}


@pytest.mark.parametrize('page', PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_documented_tool_options_exist(page):
    options = tool_options()
    # a command continued with a trailing backslash is one line
    for line in read(page).replace('\\\n', ' ').splitlines():
        tools = [t for t in re.findall(r'\b(\w+\.py)\b', line) if t in options]
        if not tools:
            continue
        accepted = set().union(*(options[t] for t in tools))
        for option in re.findall(r'(?<![\w-])(--[a-z][\w-]*)', line):
            assert option in accepted, (page, option, tools, line)
