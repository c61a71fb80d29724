/** Where a terminal stands. Each scene needs the credential scope of the same name. */
import { ProtocolError } from './errors.js';
import type { Scope } from './credential.js';

export const SCENES = ['canteen', 'shop', 'bus', 'gate'] as const;
export type Scene = (typeof SCENES)[number];

export function sceneId(scene: Scene): number {
  return SCENES.indexOf(scene) + 1;
}

export function sceneFromId(id: number, field: string): Scene {
  const s = SCENES[id - 1];
  if (s === undefined) throw new ProtocolError('bad_value', `${field}: scene ${id}`);
  return s;
}

/** The scope a credential needs to be used at a terminal of this scene. */
export function scopeForScene(scene: Scene): Scope {
  return scene;
}
