# Every setting lives in settings.ini: edit there, not here.
from configparser import ConfigParser
import setuptools, shlex

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

expected = 'version description keywords author author_email'.split()
missing = [o for o in expected if o not in cfg]
if missing: raise KeyError(f"settings.ini lacks the key(s) {missing}: add them under [DEFAULT]")
setup_cfg = {o: cfg[o] for o in expected}

licenses = {
    'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License'),
    'mit': ('MIT License', 'OSI Approved :: MIT License'),
}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()

lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))
min_python = cfg['min_python']
requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
serve_requirements = shlex.split(cfg.get('serve_requirements', ''))
explain_requirements = shlex.split(cfg.get('explain_requirements', ''))
transformers_requirements = shlex.split(cfg.get('transformers_requirements', ''))
distributed_requirements = shlex.split(cfg.get('distributed_requirements', ''))
console_scripts = cfg.get('console_scripts', '').split()
classifiers = (['Development Status :: ' + statuses[int(cfg['status'])],
                'Intended Audience :: ' + cfg['audience'].title(),
                'Natural Language :: ' + cfg['language'].title()]
               + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]]
               + (['License :: ' + lic[1]] if lic[1] else []))

setuptools.setup(
    name=cfg['lib_name'],
    license=lic[0],
    classifiers=classifiers,
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True,
    package_data={cfg['lib_name']: ['models/*/*.md', 'models/*/*/*']},   # the package's own Stage-1 LMs (bundles and model card)
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'serve': serve_requirements, 'explain': explain_requirements, 'transformers': transformers_requirements, 'distributed': distributed_requirements},
    dependency_links=cfg.get('dep_links', '').split(),
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': console_scripts, 'nbdev': [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d']},
    **setup_cfg)
