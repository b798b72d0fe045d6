"Shared pytest set-up: the `slow` marker and the location of the shared data sets."
import os, pytest, torch
from ulmfit_ext.core import dataset_path

def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: real data or long runs; run with SLOW=1')

def pytest_collection_modifyitems(config, items):
    if os.environ.get('SLOW') == '1': return
    skip = pytest.mark.skip(reason='slow test: set SLOW=1 to run it')
    for item in items:
        if 'slow' in item.keywords: item.add_marker(skip)

@pytest.fixture
def shared_dataset():
    "Return a function that finds a shared data set or skips the test with the reason"
    def _get(name):
        p = dataset_path(name)
        if p is None: pytest.skip(f'../shared/datasets/{name} is not on this machine (set ULMFIT_DATA to point at it)')
        return p
    return _get

@pytest.fixture(autouse=True, scope='session')
def one_thread():
    "The test models are tiny: extra torch threads only fight over a shared CPU; restore the setting afterwards"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
