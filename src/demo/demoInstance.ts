import { randomUUID } from 'node:crypto';
import type { Marker } from '../process/marker.js';

/**
 * Every demo run is a bot instance whose id starts with this prefix. The demo's start-up reaper acts only on
 * such instances: an earlier demo that was killed may have left fake agents behind, but a real bot on the same
 * host reaps its own leftovers (and closes their rows in its own database) when it restarts.
 */
export const DEMO_INSTANCE_PREFIX = 'demo-';

export function newDemoInstanceId(): string {
  return `${DEMO_INSTANCE_PREFIX}${randomUUID()}`;
}

export function isDemoInstance(marker: Marker): boolean {
  return marker.instanceId.startsWith(DEMO_INSTANCE_PREFIX);
}
