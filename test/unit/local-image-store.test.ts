import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  imageReference,
  LocalImageStore,
  localImagesDir,
} from '../../deploy/process/local-image-store.js';

describe('the local image store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fnbus-images-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads an image name as a container engine does: no tag is :latest', () => {
    assert.equal(imageReference('hello'), 'hello:latest');
    assert.equal(imageReference('ghcr.io/team/hello'), 'ghcr.io/team/hello:latest');
    assert.equal(imageReference('localhost:5000/hello'), 'localhost:5000/hello:latest');
    assert.equal(imageReference('hello:1.2'), 'hello:1.2');
    assert.equal(imageReference('hello@sha256:abc'), 'hello@sha256:abc');
  });

  it('keeps one build per image, replaced whole, in files no image name can leave', () => {
    const store = new LocalImageStore(dir);
    store.save('ghcr.io/team/hello', { lang: 'node', handler: '/srv/a' });
    store.save('ghcr.io/team/hello:latest', { lang: 'python3', handler: '/srv/b' });
    assert.equal(store.find('ghcr.io/team/hello')?.handler, '/srv/b');
    assert.equal(store.find('ghcr.io/team/hello:latest')?.lang, 'python3');
    assert.equal(store.find('../../etc/passwd'), undefined);
    assert.equal(store.find(''), undefined);
    store.save('../../escape', { lang: 'node', handler: '/srv/c' });
    assert.deepEqual(readdirSync(dir).sort(), [
      '..%2F..%2Fescape%3Alatest.json',
      'ghcr.io%2Fteam%2Fhello%3Alatest.json',
    ]);
    assert.throws(() => store.save('x', { lang: 'node', handler: 'relative/path' }));
  });

  it('lives in $FNBUS_IMAGES, else under XDG_DATA_HOME, else ~/.local/share', () => {
    assert.equal(localImagesDir({ FNBUS_IMAGES: '/i', XDG_DATA_HOME: '/d' }), '/i');
    assert.equal(localImagesDir({ XDG_DATA_HOME: '/d' }), '/d/fnbus/images');
    assert.equal(localImagesDir({ HOME: '/h' }), '/h/.local/share/fnbus/images');
  });
});
